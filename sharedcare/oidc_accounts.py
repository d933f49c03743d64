"""The accounts a local NHS Care Identity provider signs in (docker/oidc/provider.mjs), as CIS2 would describe them.

`python -m sharedcare.oidc_accounts` prints them as JSON, one per SDS user id the role profiles carry, each with its
roles in the shape of CIS2's `nhsid_nrbac_roles` claim; `make run` gives them the demo password and starts the
provider with them. Only for a local provider: a real CIS2 knows its users itself.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def cis2_role_of(profile: Any) -> dict[str, str]:
    """One role profile as an element of `nhsid_nrbac_roles`: ids, organisation and the job role's code and name."""
    return {
        "person_roleid": profile.sds_role_profile_id,
        "person_orgid": f"{profile.sds_user_id}-{profile.organisation.ods_code}",
        "org_code": profile.organisation.ods_code,
        # CIS2 writes staff group, job group and job role, colon-separated; only the job role matters here.
        "role_code": f"S0000:G0000:{profile.job_role}",
        "role_name": f'"{profile.get_job_role_display()}"',
    }


def oidc_accounts() -> list[dict[str, Any]]:
    """Every user whose role profiles carry an SDS user id, with the roles that carry a role profile id."""
    from consent.models import StaffProfile

    accounts: dict[str, dict[str, Any]] = {}
    profiles = (
        StaffProfile.objects.select_related("user", "organisation")
        .exclude(sds_user_id="")
        .exclude(sds_role_profile_id="")
        .order_by("user__username", "pk")
    )
    for profile in profiles:
        account = accounts.setdefault(
            profile.sds_user_id,
            {
                "login": profile.user.get_username(),
                "uid": profile.sds_user_id,
                "given_name": profile.user.first_name,
                "family_name": profile.user.last_name,
                "roles": [],
            },
        )
        account["roles"].append(cis2_role_of(profile))
    return list(accounts.values())


def main() -> int:
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sharedcare.settings")

    django.setup()
    json.dump(oidc_accounts(), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
