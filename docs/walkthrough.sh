#!/usr/bin/env bash
# One dossier from online submission to the returned result, with curl, against a running Motcua
# (`make run`). The README walks through these same commands. BASE_URL defaults to localhost:8000.
set -euo pipefail
BASE=${BASE_URL:-http://localhost:8000}
json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }
post() { curl -sf -X POST "$BASE$1" -H 'Content-Type: application/json' "${@:3}" -d "$2"; }
token() { post /api/v1/auth/token "{\"username\": \"$1\", \"password\": \"demo\"}" | json '["access_token"]'; }

COMMUNE=000.20.01.H56      # Ủy ban nhân dân phường Hạc Thành: receives the dossier
LAND=000.12.01.H56         # Văn phòng Đăng ký đất đai: step 1
DEPT=000.00.12.H56         # Sở Nông nghiệp và Môi trường: step 2 (signs)

# 1. A citizen submits online (no account needed): re-issue of a lost land-use certificate, with the
# procedure's two mandatory documents (GET /api/v1/procedures/1.012786 lists them, `required`); online,
# a dossier lacking one is refused (400, `error.missing`). Each is a PDF, JPEG or PNG of at most 5 MB:
# here a stand-in PDF, base64 in the JSON (or multipart: see docs/intake.md).
PDF=$(printf '%s\n' '%PDF-1.4' '%%EOF' | base64 | tr -d '\n')
CODE=$(post /api/v1/dossiers '{"procedure_code": "1.012786", "channel": "online",
  "applicant": {"full_name": "Trần Thị Bình", "id_number": "038190012345", "phone": "0987654321",
                "email": "binh.tran@example.vn", "address": "Số 7 phố Hàng Bông"}, "form": {},
  "documents": [{"key": "don_de_nghi", "filename": "don-de-nghi.pdf", "content_base64": "'"$PDF"'"},
                {"key": "xac_nhan_niem_yet", "filename": "xac-nhan-niem-yet.pdf", "content_base64": "'"$PDF"'"}]}' \
  | json '["code"]')
echo "1. submitted $CODE"

# 2. The commune's one-stop counter receives it: the due date is fixed in working days.
RECEPTIONIST=$(token "receptionist@$COMMUNE")
post "/api/v1/dossiers/$CODE/receive" '{}' -H "Authorization: Bearer $RECEPTIONIST" | json '["due_at"]' | sed 's/^/2. received, due /'

# 3. Each agency on the process completes its task (liên thông): land office, department, commune.
for officer in "specialist@$LAND" "leader@$DEPT" "specialist@$COMMUNE"; do
  TOKEN=$(token "$officer")
  for _ in $(seq 1 50); do
    TASK=$(curl -sf "$BASE/api/v1/tasks?status=open" -H "Authorization: Bearer $TOKEN" \
      | python3 -c "import sys, json; print(next((t['id'] for t in json.load(sys.stdin) if t['dossier_code'] == '$CODE'), ''))")
    [ -n "$TASK" ] && break; sleep 0.2
  done
  post "/api/v1/tasks/$TASK/complete" '{"outcome": "approve", "note": "Đủ điều kiện"}' \
    -H "Authorization: Bearer $TOKEN" > /dev/null
  echo "3. $officer completed their step"
done

# 4. The result is ready (status 9); the counter returns it to the citizen (status 10).
for _ in $(seq 1 50); do
  STATUS=$(curl -sf "$BASE/api/v1/dossiers/$CODE" -H "Authorization: Bearer $RECEPTIONIST" | json '["status"]')
  [ "$STATUS" = result_ready ] && break; sleep 0.2
done
post "/api/v1/dossiers/$CODE/return" '{"method": "counter"}' -H "Authorization: Bearer $RECEPTIONIST" \
  | json '["status"]' | sed 's/^/4. /'

# 5. Anyone with the code and the last 4 digits of the phone can track it (personal data masked).
for _ in $(seq 1 50); do
  STATUS=$(curl -sf "$BASE/api/v1/track/$CODE?key=4321" | json '["status"]')
  [ "$STATUS" = returned ] && break; sleep 0.2
done
echo "5. tracking says: $STATUS"
curl -sf "$BASE/api/v1/track/$CODE?key=4321"; echo

# 6. The leader's timeliness report counts it (received online today, resolved early). "Today" is the
# province's date (Asia/Ho_Chi_Minh), not the machine's: on a UTC clock they differ from 17:00 to midnight.
TODAY=$(TZ=Asia/Ho_Chi_Minh date +%F)
LEADER=$(token "leader@$COMMUNE")
curl -sf "$BASE/api/v1/reports/timeliness?from=$TODAY&to=$TODAY&agency=$COMMUNE" -H "Authorization: Bearer $LEADER"; echo
