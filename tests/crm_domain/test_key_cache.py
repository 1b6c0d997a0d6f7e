"""A sealer keeps few ciphers in memory at any number of customers.

A cipher (AES-GCM with its key schedule and tables) costs about 2 KB: a process that
touches every customer (a projection runner, an import, a rebuild holding every key)
must not keep one per customer. The cache is bounded (the oldest entry goes), and a
rebuild holds raw keys, building ciphers as it reads.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from crm_domain.application import CRM
from crm_domain.customer import Customer
from crm_domain.infrastructure import sealing
from crm_domain.infrastructure.keystore import SQLKeyStore
from crm_domain.infrastructure.sealing import PersonalDataSealer

SUMMARY = "asked about her late husband's policy"


def _history(crm: CRM, customers: int) -> list[UUID]:
    ids = []
    for i in range(customers):
        customer_id = crm.register_customer(kind="individual", name=f"Person {i}", code=f"P{i}")
        crm.log_contact(customer_id, channel="phone", direction="inbound", summary=SUMMARY)
        ids.append(customer_id)
    return ids


def _contacts(crm: CRM) -> list[Any]:
    return [
        n
        for n in crm.app.recorder.select_notifications(start=1, limit=1000)
        if n.topic.endswith("Customer.ContactLogged")
    ]


class _Counting:
    """Counts the ciphers built, and the keys asked of the key store one at a time."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ciphers = 0
        self.gets = 0
        real_cipher, real_get = sealing.AESGCM, SQLKeyStore.get

        def cipher(key: bytes) -> Any:
            self.ciphers += 1
            return real_cipher(key)

        def get(store: SQLKeyStore, subject: UUID) -> Any:
            self.gets += 1
            return real_get(store, subject)

        monkeypatch.setattr(sealing, "AESGCM", cipher)
        monkeypatch.setattr(SQLKeyStore, "get", get)


def _reader(crm: CRM, limit: int) -> PersonalDataSealer:
    """A fresh sealer on ``crm``'s keys, put in its mapper's place."""
    old = crm.app.sealer
    assert old is not None
    sealer = PersonalDataSealer(old.keys, cached_ciphers=limit)
    crm.app.mapper.sealer = sealer  # type: ignore[attr-defined]
    return sealer


def test_the_cipher_cache_drops_the_oldest_beyond_its_limit(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = CRM(sqlite_url)
    try:
        _history(crm, 6)
        contacts = _contacts(crm)
        for limit, gets in ((3, 12), (6, 6)):
            _reader(crm, limit)
            counting = _Counting(monkeypatch)
            for _ in range(2):  # round robin over six customers
                for n in contacts:
                    assert crm.app.mapper.to_event_state(n)[1]["summary"] == SUMMARY
            # Three places for six customers: every read asks the key store again; six: once each.
            assert counting.gets == gets
    finally:
        crm.close()


def test_holding_every_key_builds_no_cipher_until_one_is_needed(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = CRM(sqlite_url)
    try:
        _history(crm, 6)
        contacts = _contacts(crm)
        sealer = _reader(crm, 3)
        counting = _Counting(monkeypatch)
        assert sealer.hold_all_keys()
        assert counting.ciphers == 0  # raw keys: a few bytes a customer
        for _ in range(2):
            for n in contacts:
                assert crm.app.mapper.to_event_state(n)[1]["summary"] == SUMMARY
        assert counting.gets == 0  # every key came from the one query
        assert counting.ciphers == 12  # three kept: each read builds its cipher again
        sealer.release_keys()
        _reader(crm, 6).hold_all_keys()
        counting.ciphers = 0
        for _ in range(2):
            for n in contacts:
                crm.app.mapper.to_event_state(n)
        assert counting.ciphers == 6  # room for all: one each
    finally:
        crm.close()


def test_an_erasure_read_while_keys_are_held_drops_the_built_cipher(sqlite_url: str) -> None:
    writer = CRM(sqlite_url)
    reader = CRM(sqlite_url)
    try:
        [customer_id] = _history(writer, 1)
        sealer = _reader(reader, 4)
        assert sealer.hold_all_keys()
        [contact] = _contacts(reader)
        assert reader.app.mapper.to_event_state(contact)[1]["summary"] == SUMMARY  # built
        writer.forget_customer(customer_id, reason="request")
        erasure = next(
            n
            for n in reader.app.recorder.select_notifications(start=1, limit=100)
            if n.topic.endswith("Customer.PersonalDataErased")
        )
        cls, _ = reader.app.mapper.to_event_state(erasure)
        assert cls is Customer.PersonalDataErased
        # The held key and the cipher built from it are gone: the key store says destroyed.
        assert reader.app.mapper.to_event_state(contact)[1]["summary"] != SUMMARY
    finally:
        reader.close()
        writer.close()


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cached_ciphers"):
        PersonalDataSealer(SQLKeyStore.__new__(SQLKeyStore), cached_ciphers=0)
