"""notify's RPC inputs and outputs."""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates

from motcua.contracts.rpc import NotificationPreviewV1
from motcua.contracts.views import DeliveryViewV1, PreferenceViewV1
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


class PreviewIn(NotificationPreviewV1, _In):
    event_type = fields.Str(required=True, validate=validate.OneOf(sorted(SAMPLES)))


class PreferencesIn(_In):
    dossier_code = fields.Str(required=True, validate=_CODE)
    choices = fields.Dict(keys=fields.Str(validate=validate.OneOf(CHANNELS)), values=fields.Bool(truthy={True}, falsy={False}),
                          required=True)
    source = fields.Str(required=True, validate=validate.Length(min=1, max=64))

    @validates("choices")
    def _not_empty(self, value, **_):
        if not value:
            raise ValidationError(f"name at least one of {', '.join(CHANNELS)}")


PreferenceOut = PreferenceViewV1


def preferences_out(view: dict) -> dict:
    return {channel: PreferenceOut().dump(choice) for channel, choice in view.items()}


class DeliveryOut(DeliveryViewV1):
    """A delivery as officers see it: the recipient only masked, never its hash, address or content."""

    recipient = fields.Str(attribute="recipient_masked")
    dead_letter = fields.Function(lambda d: d.dead_lettered_at is not None)
