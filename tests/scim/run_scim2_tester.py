#!/usr/bin/env python3
"""Runs scim2-tester (the python-scim project's SCIM conformance checker) against a live
Sightline collector and prints every check as a table: status, resource type, title, reason.

    run_scim2_tester.py BASE_URL CA_PEM   (the scim token in $SIGHTLINE_SCIM_TOKEN)

Exits 1 if any applicable check ends ERROR or CRITICAL (a MUST of RFC 7643/7644 broken);
DEVIATION (a SHOULD not followed) is printed but does not fail. Discovery is read from the
server, so the checks exercise exactly what /ServiceProviderConfig, /Schemas and
/ResourceTypes advertise.

scim2-tester's lifecycle checks all begin by creating a resource, so they run for the
writable resource types; a read-only one (READ_ONLY) is read with scim2-client instead —
listed, then each resource fetched by id, both validated against the model composed from the
server's own /Schemas — and a write to it must be a SCIM 405.
"""

import os
import ssl
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

# Checks that do not apply to Sightline, with the reason; the Rust test fails on any other
# ERROR or CRITICAL. Keyed by (resource type, check title, attribute path) so that one
# attribute's exception never hides another attribute's failure under the same check.
NOT_APPLICABLE: dict[tuple[str, str, str], str] = {
    ("User", "check_remove_attribute", "active"): (
        "Sightline keeps `active` as a boolean: a person is active unless the IdP deactivates "
        "them (that is the offboarding signal), so removing it reads back as true. RFC 7643 "
        "gives no meaning to an absent `active`; Okta and Entra always send it."
    ),
}

# Read-only display names the server fills in from the referenced user (RFC 7643 §4.3:
# manager.displayName is readOnly; a member's `display` is the user's current name).
# scim2-tester PATCHes a reference without them and compares field by field, so a
# difference in these alone is not a failure.
SERVER_SET = {"display", "displayName", "display_name"}
SERVER_SET_REASON = (
    "the only difference is a read-only display name the server fills from the referenced "
    "user (manager.displayName, members.display), which the check left unset"
)


def plain(v: object) -> object:
    """A model as plain data without unset fields or the models' own `schemas` lists."""
    if hasattr(v, "model_dump"):
        v = v.model_dump(exclude_none=True)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items() if x is not None and k != "schemas"}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def without_server_set(actual: object, expected: object) -> object:
    if isinstance(actual, dict) and isinstance(expected, dict):
        return {
            k: without_server_set(v, expected.get(k))
            for k, v in actual.items()
            if not (k in SERVER_SET and k not in expected)
        }
    if isinstance(actual, list) and isinstance(expected, list) and len(actual) == len(expected):
        return [without_server_set(a, e) for a, e in zip(actual, expected)]
    return actual


def not_applicable(r) -> str | None:
    """Why a failing check does not apply, or None."""
    data = r.data if isinstance(r.data, dict) else {}
    key = (r.resource_type or "-", r.title or "-", str(data.get("urn", "")))
    if key in NOT_APPLICABLE:
        return NOT_APPLICABLE[key]
    actual = data.get("modify_actual", data.get("actual"))
    if "expected" in data and actual is not None:
        expected = plain(data["expected"])
        if expected == without_server_set(plain(actual), expected):
            return SERVER_SET_REASON
    return None

FAILING = {Status.ERROR, Status.CRITICAL}

# Resource types served read-only, with the reason.
READ_ONLY: dict[str, str] = {
    "Agent": "the connector register is what agents on laptops report, not what a client provisions",
}


def read_only_checks(client: SyncSCIMClient, http: httpx2.Client) -> list[tuple[str, str, str, str]]:
    """Rows (status, resource type, check, reason) for the read-only resource types."""
    rows = []
    for rt in client.provider.resource_types:
        if rt.name not in READ_ONLY:
            continue
        model = client.provider.model_for(rt)
        if model is None:
            rows.append(("ERROR", rt.name, "read_only_model", f"no schema composes {rt.schema_}"))
            continue
        try:
            listed = client.query(model)
            found = listed.resources or []
            rows.append(("SUCCESS", rt.name, "read_only_list", f"{listed.total_results} listed, valid"))
            for r in found:
                one = client.query(model, r.id)
                if one.id != r.id:
                    raise ValueError(f"GET {rt.endpoint}/{r.id} answered {one.id}")
            rows.append(("SUCCESS", rt.name, "read_only_get", f"each of {len(found)} read by id, valid"))
        except Exception as e:  # any refusal or invalid payload is the failure reported
            cause = f" ({e.__cause__})" if e.__cause__ else ""
            rows.append(("ERROR", rt.name, "read_only_read", f"{type(e).__name__}: {e}{cause}"))
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            path = rt.endpoint if method == "POST" else f"{rt.endpoint}/x"
            r = http.request(method, path, json={"schemas": [rt.schema_]})
            ok = r.status_code == 405 and r.json().get("status") == "405"
            rows.append(
                ("SUCCESS" if ok else "ERROR", rt.name, f"read_only_refuses_{method.lower()}", f"{r.status_code}")
            )
    return rows


def cell(text: object, width: int) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= width else s[: width - 1] + "…"


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, ca = sys.argv[1], sys.argv[2]
    token = os.environ.get("SIGHTLINE_SCIM_TOKEN")
    if not token:
        print("SIGHTLINE_SCIM_TOKEN is not set", file=sys.stderr)
        return 2
    http = httpx2.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        verify=ssl.create_default_context(cafile=ca),
        timeout=30,
    )
    advertised = [t["name"] for t in http.get("/ResourceTypes").json().get("Resources", [])]
    client = SyncSCIMClient(http)
    results = check_server(client, resource_types=[t for t in advertised if t not in READ_ONLY])
    na = {id(r): not_applicable(r) for r in results if r.status in FAILING}
    # A failing check that does not apply is shown as N/A, its reason listed below the table.
    rows = [
        ("N/A" if na.get(id(r)) else r.status.name, r.resource_type or "-", r.title or "-", r.reason or "")
        for r in results
    ]
    read_only = read_only_checks(client, http) if client.provider.resource_types else []
    rows.extend(read_only)
    print(f"{'STATUS':<11} {'RESOURCE':<9} {'CHECK':<58} REASON")
    for status, resource, title, reason in rows:
        print(f"{status:<11} {resource:<9} {cell(title, 58):<58} {cell(reason, 160)}")
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status.name] = counts.get(r.status.name, 0) + 1
    for status, *_ in read_only:
        counts[status] = counts.get(status, 0) + 1
    print("totals: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    failed = []
    for r in results:
        if r.status not in FAILING:
            continue
        why = na.get(id(r))
        if why is None:
            failed.append(r)
        else:
            urn = r.data.get("urn", "") if isinstance(r.data, dict) else ""
            print(f"not applicable: {r.resource_type or '-'} {r.title} {urn}: {why}")
    for r in failed:
        print(f"FAILED: {r.status.name} {r.resource_type or '-'} {r.title}: {r.reason}\n  data: {r.data!r}"[:2000])
    read_only_failed = [r for r in read_only if r[0] != "SUCCESS"]
    for status, resource, title, reason in read_only_failed:
        print(f"FAILED: {status} {resource} {title}: {reason}"[:2000])
    for name, why in READ_ONLY.items():
        print(f"read-only: {name}: {why}")
    ok = len(results) - len(failed) + len(read_only) - len(read_only_failed)
    print(f"scim2-tester checks: {ok} ok, {len(failed) + len(read_only_failed)} failing")
    return 1 if failed or read_only_failed else 0


if __name__ == "__main__":
    sys.exit(main())
