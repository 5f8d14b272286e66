"""notify's RPC inputs and outputs."""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates

from services.notify.templates import CHANNELS, SAMPLES

_CODE = validate.Length(min=1, max=64)


class _In(Schema):
    class Meta:
        unknown = RAISE


class ListDeliveriesIn(_In):
    dossier_code = fields.Str(required=True, validate=_CODE)


class DeadLettersIn(_In):
    limit = fields.Int(required=True, validate=validate.Range(min=1, max=1000))


class ResendIn(_In):
    delivery_id = fields.Int(required=True, strict=True, validate=validate.Range(min=1))


class ReceiptIn(_In):
    provider = fields.Str(required=True, validate=validate.Regexp(r"^[a-z0-9_-]{1,32}$"))
    body = fields.Dict(required=True)


class PreviewIn(_In):
    event_type = fields.Str(required=True, validate=validate.OneOf(sorted(SAMPLES)))
    channel = fields.Str(required=True, validate=validate.OneOf(CHANNELS))
    agency_code = fields.Str(load_default=None, allow_none=True, validate=_CODE)


class PreferencesIn(_In):
    dossier_code = fields.Str(required=True, validate=_CODE)
    choices = fields.Dict(keys=fields.Str(validate=validate.OneOf(CHANNELS)), values=fields.Bool(truthy={True}, falsy={False}),
                          required=True)
    source = fields.Str(required=True, validate=validate.Length(min=1, max=64))

    @validates("choices")
    def _not_empty(self, value, **_):
        if not value:
            raise ValidationError(f"name at least one of {', '.join(CHANNELS)}")


class PreferenceOut(Schema):
    enabled = fields.Bool()
    legal_basis = fields.Str()
    recorded_at = fields.AwareDateTime(allow_none=True)
    source = fields.Str(allow_none=True)


def preferences_out(view: dict) -> dict:
    return {channel: PreferenceOut().dump(choice) for channel, choice in view.items()}


class DeliveryOut(Schema):
    """A delivery as officers see it: the recipient only masked, never its hash, address or content."""

    id = fields.Int()
    event_id = fields.Str()
    event_type = fields.Str()
    dossier_code = fields.Str()
    agency_code = fields.Str(allow_none=True)
    channel = fields.Str()
    provider = fields.Str(allow_none=True)
    recipient = fields.Str(attribute="recipient_masked")
    status = fields.Str()
    reason = fields.Str(allow_none=True)
    attempts = fields.Int()
    resends = fields.Int()
    segments = fields.Int(allow_none=True)
    dead_letter = fields.Function(lambda d: d.dead_lettered_at is not None)
    next_attempt_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()
    delivered_at = fields.AwareDateTime(allow_none=True)
