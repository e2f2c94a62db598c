#!/usr/bin/env python3
"""Runs scim2-tester (the python-scim project's SCIM conformance checker) against a live
Sightline collector and prints every check as a table: status, resource type, title, reason.

    run_scim2_tester.py BASE_URL CA_PEM   (the scim token in $SIGHTLINE_SCIM_TOKEN)

Exits 1 if any applicable check ends ERROR or CRITICAL (a MUST of RFC 7643/7644 broken);
DEVIATION (a SHOULD not followed) is printed but does not fail. Discovery is read from the
server, so the checks exercise exactly what /ServiceProviderConfig, /Schemas and
/ResourceTypes advertise.
"""

import os
import ssl
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

# Checks that do not apply to Sightline, by title, with the reason. Keep this list short and
# every reason true: the Rust test fails on any other ERROR or CRITICAL.
NOT_APPLICABLE: dict[str, str] = {}

FAILING = {Status.ERROR, Status.CRITICAL}


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
    results = check_server(SyncSCIMClient(http))
    rows = [
        (r.status.name, r.resource_type or "-", r.title or "-", r.reason or "")
        for r in results
    ]
    print(f"{'STATUS':<11} {'RESOURCE':<9} {'CHECK':<58} REASON")
    for status, resource, title, reason in rows:
        print(f"{status:<11} {resource:<9} {cell(title, 58):<58} {cell(reason, 160)}")
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status.name] = counts.get(r.status.name, 0) + 1
    print("totals: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    failed = [r for r in results if r.status in FAILING and r.title not in NOT_APPLICABLE]
    for r in results:
        if r.status in FAILING and r.title in NOT_APPLICABLE:
            print(f"not applicable: {r.title}: {NOT_APPLICABLE[r.title]}")
    for r in failed:
        print(f"FAILED: {r.status.name} {r.resource_type or '-'} {r.title}: {r.reason}\n  data: {r.data!r}"[:2000])
    print(f"scim2-tester checks: {len(results) - len(failed)} ok, {len(failed)} failing")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
