"""The fake Cloudflare API behaves as Cloudflare documents it, so tests that pass against it
say something about the real thing. Checked against the trimmed copy of Cloudflare's
OpenAPI document in tests/mirror/data (paths, required and known record fields) and the
documented facts (envelope, paging, auth, limits, validation)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.mirror.fake_cloudflare import FakeCloudflare, serve

TOKEN = "fake-token-0123456789"
OPENAPI = json.loads((Path(__file__).parent / "data" / "cloudflare-openapi-dns.json").read_text())
SCHEMAS = OPENAPI["components"]["schemas"]


@pytest.fixture(scope="module")
def fake() -> FakeCloudflare:
    return FakeCloudflare(token=TOKEN)


@pytest.fixture(scope="module")
def api(fake: FakeCloudflare) -> Iterator[httpx.Client]:
    with (
        serve(fake) as base,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, trust_env=False) as client,
    ):
        yield client


@pytest.fixture
def zone(fake: FakeCloudflare) -> str:
    return fake.add_zone(f"z{len(fake.zones)}.example")


def records(zone: str) -> str:
    return f"/zones/{zone}/dns_records"


def error_codes(response: httpx.Response) -> list[int]:
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    return [e["code"] for e in body["errors"]]


def _properties(name: str) -> set[str]:
    found: set[str] = set()
    schema = SCHEMAS[name]
    for part in schema.get("allOf", [schema]):
        if "$ref" in part:
            found |= _properties(part["$ref"].split("/")[-1])
        found |= set(part.get("properties", {}))
    return found


def test_the_fake_serves_only_documented_operations() -> None:
    documented = {(path, method.upper()) for path, ops in OPENAPI["paths"].items() for method in ops}
    served = {
        ("/zones", "GET"),
        ("/zones/{zone_id}", "GET"),
        ("/zones/{zone_id}/dns_records", "GET"),
        ("/zones/{zone_id}/dns_records", "POST"),
        ("/zones/{zone_id}/dns_records/{dns_record_id}", "GET"),
        ("/zones/{zone_id}/dns_records/{dns_record_id}", "PATCH"),
        ("/zones/{zone_id}/dns_records/{dns_record_id}", "PUT"),
        ("/zones/{zone_id}/dns_records/{dns_record_id}", "DELETE"),
    }
    assert served <= documented  # plus /dns_records/batch, newer than the document


def test_records_have_the_documented_fields(api: httpx.Client, zone: str) -> None:
    response = api.post(records(zone), json={"type": "A", "name": "www", "content": "192.0.2.1", "ttl": 60})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "errors", "messages", "result"} and body["success"] is True
    record = body["result"]
    required = set(SCHEMAS["dns-records_dns-record"]["required"])
    assert required <= set(record), required - set(record)
    assert set(record) <= _properties("dns-records_ARecord"), set(record) - _properties("dns-records_ARecord")
    assert record["name"] == f"www.{api.get(f'/zones/{zone}').json()['result']['name']}"  # relative -> FQDN
    assert (record["ttl"], record["proxied"], record["proxiable"]) == (60, False, True)


def test_list_filters_and_pages(api: httpx.Client, fake: FakeCloudflare, zone: str) -> None:
    name = f"pool.{fake.zones[zone]}"
    for n in range(1, 8):
        fake.add_record(zone, "A", name, f"192.0.2.{n}")
    fake.add_record(zone, "AAAA", name, "2001:db8::1")
    fake.add_record(zone, "A", f"other.{fake.zones[zone]}", "192.0.2.99")
    first = api.get(records(zone), params={"name": name, "type": "A", "per_page": 3}).json()
    assert first["result_info"] == {"page": 1, "per_page": 3, "count": 3, "total_count": 7, "total_pages": 3}
    last = api.get(records(zone), params={"name": name, "type": "A", "per_page": 3, "page": 3}).json()
    assert [r["content"] for r in last["result"]] == ["192.0.2.7"]
    everything = api.get(records(zone), params={"name": name}).json()
    assert everything["result_info"]["per_page"] == 100  # Cloudflare's default
    assert {r["type"] for r in everything["result"]} == {"A", "AAAA"}
    assert api.get(records(zone), params={"page": 0}).status_code == 400


def test_a_bad_token_is_403_with_code_10000(api: httpx.Client, zone: str) -> None:
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": ""}):
        response = api.get(records(zone), headers=headers)
        assert response.status_code == 403 and error_codes(response) == [10000]


def test_429_carries_retry_after(api: httpx.Client, fake: FakeCloudflare, zone: str) -> None:
    fake.fail(429, times=1, retry_after="3")
    response = api.get(records(zone))
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"
    assert error_codes(response) == [971]
    assert api.get(records(zone)).status_code == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"type": "TXT", "name": "t", "content": "hello", "proxied": True}, 9004),
        ({"type": "A", "name": "a", "content": "192.0.2.1", "ttl": 30}, 9021),
        ({"type": "A", "name": "a", "content": "192.0.2.1", "ttl": 90000}, 9021),
        ({"type": "A", "name": "a", "content": "2001:db8::1"}, 9005),
        ({"type": "A", "name": "a", "content": "192.0.2.1", "proxy": True}, 9207),
        ({"type": "A", "name": "a"}, 1004),
        ({"type": "CNAME", "name": "c", "content": "not a host"}, 9007),
    ],
)
def test_malformed_records_are_refused(api: httpx.Client, zone: str, body: dict[str, Any], code: int) -> None:
    response = api.post(records(zone), json=body)
    assert response.status_code == 400 and error_codes(response) == [code]


def test_invalid_json_is_refused(api: httpx.Client, zone: str) -> None:
    response = api.post(records(zone), content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and error_codes(response) == [9207]


def test_cname_excludes_other_address_records_and_duplicates_are_refused(
    api: httpx.Client, zone: str
) -> None:
    assert api.post(records(zone), json={"type": "A", "name": "x", "content": "192.0.2.1"}).status_code == 200
    response = api.post(records(zone), json={"type": "CNAME", "name": "x", "content": "elsewhere.example"})
    assert error_codes(response) == [81053]
    response = api.post(records(zone), json={"type": "A", "name": "x", "content": "192.0.2.1"})
    assert error_codes(response) == [81058]


def test_patch_put_delete(api: httpx.Client, zone: str) -> None:
    created = api.post(records(zone), json={"type": "A", "name": "p", "content": "192.0.2.1", "comment": "c"})
    record_id = created.json()["result"]["id"]
    patched = api.patch(f"{records(zone)}/{record_id}", json={"content": "192.0.2.2"}).json()["result"]
    assert (patched["content"], patched["comment"]) == ("192.0.2.2", "c")  # PATCH keeps the rest
    put = api.put(f"{records(zone)}/{record_id}", json={"type": "A", "name": "p", "content": "192.0.2.3"})
    assert put.json()["result"]["comment"] is None  # PUT replaces the whole record
    proxied = api.patch(f"{records(zone)}/{record_id}", json={"proxied": True, "ttl": 300}).json()["result"]
    assert (proxied["proxied"], proxied["ttl"]) == (True, 1)  # a proxied record's TTL is automatic
    assert api.delete(f"{records(zone)}/{record_id}").json()["result"] == {"id": record_id}
    assert error_codes(api.delete(f"{records(zone)}/{record_id}")) == [81044]


def test_batch_applies_deletes_patches_puts_posts_in_order_all_or_nothing(
    api: httpx.Client, fake: FakeCloudflare, zone: str
) -> None:
    name = f"rr.{fake.zones[zone]}"
    one = fake.add_record(zone, "A", name, "192.0.2.1")
    two = fake.add_record(zone, "A", name, "192.0.2.2")
    # The post re-uses a deleted value: valid only because deletes go first.
    batch = {
        "deletes": [{"id": one["id"]}],
        "patches": [{"id": two["id"], "content": "192.0.2.3"}],
        "posts": [{"type": "A", "name": name, "content": "192.0.2.1", "ttl": 60}],
    }
    result = api.post(f"{records(zone)}/batch", json=batch).json()["result"]
    assert [r["content"] for r in result["deletes"]] == ["192.0.2.1"]
    assert [r["content"] for r in result["patches"]] == ["192.0.2.3"]
    assert [r["content"] for r in result["posts"]] == ["192.0.2.1"]
    assert fake.contents(name, "A") == ["192.0.2.1", "192.0.2.3"]
    failing = {
        "deletes": [{"id": two["id"]}],
        "posts": [{"type": "A", "name": name, "content": "192.0.2.9", "ttl": 5}],
    }
    response = api.post(f"{records(zone)}/batch", json=failing)
    assert response.status_code == 400 and error_codes(response) == [9021]
    assert fake.contents(name, "A") == ["192.0.2.1", "192.0.2.3"], "a failed batch changes nothing"


def test_zones_by_name_and_an_unknown_zone(api: httpx.Client, fake: FakeCloudflare, zone: str) -> None:
    found = api.get("/zones", params={"name": fake.zones[zone]}).json()
    assert [z["id"] for z in found["result"]] == [zone]
    assert api.get("/zones", params={"name": "nowhere.example"}).json()["result"] == []
    assert error_codes(api.get("/zones/" + "0" * 32 + "/dns_records")) == [7003]
