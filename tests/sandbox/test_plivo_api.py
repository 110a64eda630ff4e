"""Plivo wire formats over real HTTP."""

from __future__ import annotations

from sandbox import SandboxHandle
from tests.sandbox.conftest import CAMPAIGN, Api, wait_for


def test_link_list_get_formats(api: Api, sandbox: SandboxHandle) -> None:
    r = api.plivo_link(["12025551111", "12025552222"], url="http://127.0.0.1:1/cb", method="POST")
    assert r.status_code == 202
    body = r.json()
    assert set(body) == {"api_id", "message"}
    assert body["message"] == (
        "Request to link 12025551111, 12025552222 to campaign CUOGHIN "
        "was received and is being processed"
    )
    r = api.plivo("GET", f"/10dlc/Campaign/{CAMPAIGN}/Number/")
    assert r.status_code == 200
    listed = r.json()
    assert listed["campaign_id"] == CAMPAIGN
    assert listed["phone_numbers"] == [
        {"number": "12025551111", "status": "PROCESSING"},
        {"number": "12025552222", "status": "PROCESSING"},
    ]
    assert listed["phone_numbers_summary"] == {"PROCESSING": 2}
    assert {"api_id", "campaign_alias", "usecase"} <= set(listed)
    sandbox.settle()
    one = api.plivo_get("12025551111").json()
    assert one["phone_numbers"] == [{"number": "12025551111", "status": "COMPLETED"}]
    assert one["campaign_id"] == CAMPAIGN


def test_lifecycle_completes_after_delay(api: Api) -> None:
    assert api.plivo_link(["12025551111"]).status_code == 202
    assert api.plivo_get("12025551111").json()["phone_numbers"][0]["status"] == "PROCESSING"
    wait_for(
        lambda: api.plivo_get("12025551111").json()["phone_numbers"][0]["status"] == "COMPLETED",
        timeout=3,
    )


def test_unlink_keeps_completed_until_done_then_404(api: Api, sandbox: SandboxHandle) -> None:
    api.plivo_link(["12025551111"])
    sandbox.settle()
    r = api.plivo_unlink("12025551111", url="http://127.0.0.1:1/cb", method="POST")
    assert r.status_code == 202
    assert r.json()["message"] == (
        "Request to unlink 12025551111 from campaign CUOGHIN was received and is being processed"
    )
    assert api.plivo_get("12025551111").json()["phone_numbers"][0]["status"] == "COMPLETED"
    again = api.plivo_unlink("12025551111")
    assert again.status_code == 400
    assert "already requested for unlinking" in again.json()["error"]
    sandbox.settle()
    r = api.plivo_get("12025551111")
    assert r.status_code == 404
    assert set(r.json()) == {"api_id", "error"}
    assert r.json()["error"] == "The number 12025551111 is not linked to this campaign"
    r = api.plivo_unlink("12025551111")
    assert r.status_code == 404
    assert r.json()["error"] == "The number 12025551111 is not linked to this campaign"


def test_errors(api: Api, sandbox: SandboxHandle) -> None:
    r = api.plivo_link(["12025551111", "123"])
    assert r.status_code == 400
    assert r.json()["error"] == "The number 123 is not a valid number"
    assert sandbox.numbers() == []  # all or nothing
    assert api.plivo_link([]).status_code == 400
    api.plivo_link(["12025551111"])
    dup = api.plivo_link(["12025551111"])
    assert dup.status_code == 400
    assert dup.json()["error"] == "The number 12025551111 is already requested for linking"
    other = api.plivo_link(["12025551111"], campaign="COTHER1")
    assert other.status_code == 400
    assert "already linked to campaign CUOGHIN" in other.json()["error"]
    busy = api.plivo_unlink("12025551111")
    assert busy.status_code == 400
    assert api.plivo_get("12025551111", campaign="COTHER1").status_code == 404
    assert api.plivo_get("12025559999").status_code == 404
    # no trailing slash: not found (Plivo URLs end in "/")
    r = api.plivo("GET", f"/10dlc/Campaign/{CAMPAIGN}/Number/12025551111")
    assert r.status_code == 404
    assert "error" in r.json()


def test_auth(api: Api) -> None:
    path = f"/10dlc/Campaign/{CAMPAIGN}/Number/"
    for auth in [("MASANDBOX0000000000A", "wrong"), ("MAOTHER00000000000AA", "x")]:
        r = api.plivo("GET", path, auth=auth)
        assert r.status_code == 401
        assert r.json()["error"] == "authentication failed"
        assert "api_id" in r.json()
    r = api.http.get(f"/v1/Account/{api.auth_id}{path}")
    assert r.status_code == 401
    # right credentials, another account in the path
    r = api.http.get(
        f"/v1/Account/MAOTHER00000000000AA{path}",
        auth=(api.auth_id, api.h.config.plivo_auth_token),
    )
    assert r.status_code == 401


def test_paging(api: Api) -> None:
    numbers = [f"1202555{i:04d}" for i in range(45)]
    assert api.plivo_link(numbers).status_code == 202
    path = f"/10dlc/Campaign/{CAMPAIGN}/Number/"
    seen: list[str] = []
    offset = 0
    while True:
        page = api.plivo("GET", path, params={"limit": 20, "offset": offset}).json()
        seen += [p["number"] for p in page["phone_numbers"]]
        assert page["phone_numbers_summary"] == {"PROCESSING": 45}
        if len(page["phone_numbers"]) < 20:
            break
        offset += 20
    assert seen == numbers
    default = api.plivo("GET", path).json()
    assert len(default["phone_numbers"]) == 20
    assert api.plivo("GET", path, params={"limit": 21}).status_code == 400
    assert api.plivo("GET", path, params={"limit": "x"}).status_code == 400


def test_plus_form_and_account_number(api: Api, sandbox: SandboxHandle) -> None:
    assert api.plivo_link(["+12025551111"]).status_code == 202
    r = api.plivo("GET", "/Number/12025551111/").json()
    assert r["tendlc_registration_status"] == "PROCESSING"
    sandbox.settle()
    r = api.plivo("GET", "/Number/12025551111/").json()
    assert (r["tendlc_campaign_id"], r["tendlc_registration_status"]) == (CAMPAIGN, "COMPLETED")
    r = api.plivo("GET", "/Number/12025550000/").json()
    assert (r["tendlc_campaign_id"], r["tendlc_registration_status"]) == (None, "UNREGISTERED")


def test_failed_link_can_be_relinked(api: Api, sandbox: SandboxHandle) -> None:
    sandbox.configure(link_failure_ratio=1.0)
    api.plivo_link(["12025551111"])
    sandbox.settle()
    assert api.plivo_get("12025551111").json()["phone_numbers"][0]["status"] == "FAILED"
    sandbox.configure(link_failure_ratio=0.0)
    assert api.plivo_link(["12025551111"]).status_code == 202
    sandbox.settle()
    assert api.plivo_get("12025551111").json()["phone_numbers"][0]["status"] == "COMPLETED"
    # unlink that fails keeps the number linked
    sandbox.configure(unlink_failure_ratio=1.0)
    assert api.plivo_unlink("12025551111").status_code == 202
    sandbox.settle()
    assert api.plivo_get("12025551111").json()["phone_numbers"][0]["status"] == "COMPLETED"
    assert sandbox.numbers("plivo")[0]["status"] == "unlink_failed"
