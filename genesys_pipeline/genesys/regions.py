"""Genesys Cloud regions and the hosts each one serves (genesys-api.md section 1.4)."""

from __future__ import annotations

# Regions by domain, with the key the SDK (269, `PureCloudRegionHosts`) gives each one.
GENESYS_REGIONS: dict[str, str] = {
    "mypurecloud.com": "us_east_1",
    "use2.us-gov-pure.cloud": "us_east_2",
    "usw2.pure.cloud": "us_west_2",
    "cac1.pure.cloud": "ca_central_1",
    "sae1.pure.cloud": "sa_east_1",
    "mxc1.pure.cloud": "mx_central_1",
    "mypurecloud.ie": "eu_west_1",
    "euw2.pure.cloud": "eu_west_2",
    "mypurecloud.de": "eu_central_1",
    "euc2.pure.cloud": "eu_central_2",
    "edee1.eusc-pure.cloud": "eusc_de_east_1",
    "mec1.pure.cloud": "me_central_1",
    "aps1.pure.cloud": "ap_south_1",
    "mypurecloud.jp": "ap_northeast_1",
    "apne2.pure.cloud": "ap_northeast_2",
    "apne3.pure.cloud": "ap_northeast_3",
    "apse1.pure.cloud": "ap_southeast_1",
    "mypurecloud.com.au": "ap_southeast_2",
}
_DOMAIN_BY_SDK_KEY = {key: domain for domain, key in GENESYS_REGIONS.items()}


def region_domain(text: str) -> str | None:
    """The region's domain for a domain, an SDK key (`eu_central_1`, `eu-central-1`) or a host
    (`https://api.mypurecloud.de/`), in any case; None if it names no region."""
    text = text.strip().lower().removeprefix("https://").rstrip("/")
    for host_prefix in ("api.", "login."):
        text = text.removeprefix(host_prefix)
    return text if text in GENESYS_REGIONS else _DOMAIN_BY_SDK_KEY.get(text.replace("-", "_"))


def api_base_url(domain: str) -> str:
    """Where the region serves `/api/v2/...`."""
    return f"https://api.{domain}"


def login_base_url(domain: str) -> str:
    """Where the region serves `/oauth/token`."""
    return f"https://login.{domain}"
