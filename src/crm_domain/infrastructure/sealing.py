"""Personal fields stored encrypted, with one key per data subject (crypto-shredding).

The :class:`~crm_domain.infrastructure.persistence.PydanticMapper` calls a
:class:`PersonalDataSealer` when it writes and reads an event or a snapshot of a customer.
The data subject is the customer: the ``Customer`` aggregate's id. Writing, the personal
fields (``@personal_data`` on the event class; all payload fields of an undeclared one)
are encrypted together, with AES-256-GCM under the subject's key, into one
``"__sealed__"`` value of the stored JSON; the fields themselves are stored *redacted*
(:data:`~crm_domain.personal.REDACTED`, same shape: ids, dates, enumerations and numbers
kept). Reading, the sealed value is decrypted over them. Once the key is destroyed
(:meth:`PersonalDataSealer.forget`) nothing can decrypt it, and every reader gets the
redacted fields: the events still load, replay and verify (the stored bytes never change).

Account events are not sealed: they name their people by customer id only (contacts,
the account's customer), so erasing the customer erases them there too. An account's name
and deal texts are business data of the account; keep persons' names out of them.

Events stored before this existed hold personal fields in clear (no ``"__sealed__"``):
they load as stored. Only events written with sealing on are erasable by destroying a key.

Keys are cached per subject for ``cache_seconds`` (the write path must stay cheap). A
process that already holds a key forgets it on destroying it, on reading the subject's
``PersonalDataErased`` event, or when the cache entry expires, whichever comes first.
The cache holds at most :data:`CACHED_CIPHERS` subjects' ciphers (the oldest go first): a
cipher costs about 2 KB (its key schedule and GCM tables), so a process that touches every
customer, such as a long-running projection runner or an import, would otherwise grow by
that much per customer.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
import time
from typing import Any
from uuid import UUID

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.utils import get_topic
from pydantic import BaseModel

from crm_domain.customer import Customer, CustomerState
from crm_domain.eventmodel import ENVELOPE_FIELDS, STORED_EVENT_CONTEXT, Snapshot
from crm_domain.infrastructure.keystore import KeyStore, new_key
from crm_domain.personal import payload_personal_fields, redact_fields

#: The key of the encrypted personal fields in a stored event's (or snapshot state's) JSON.
SEALED = "__sealed__"
_VERSION = "v1:"
_NONCE = 12
_EMPTY: tuple[Any, ...] = (None, "", [], {})
_CUSTOMER_TOPIC = get_topic(Customer)
_CUSTOMER_STATE_FIELDS = payload_personal_fields(CustomerState, frozenset())
#: Subjects whose ciphers a sealer caches at most (about 2 KB each); beyond it the oldest
#: entry is dropped and built again from its key when next needed (about 2 µs).
CACHED_CIPHERS = 4096


def _is_customer_event(cls: type[Any]) -> bool:
    """True for the event classes declared on ``Customer`` (their subject is the customer)."""
    return isinstance(cls, type) and vars(Customer).get(cls.__name__) is cls


class PersonalDataSealer:
    """Encrypts (writing) and decrypts or redacts (reading) customers' personal fields."""

    def __init__(
        self, keys: KeyStore, *, cache_seconds: float = 60.0, cached_ciphers: int = CACHED_CIPHERS
    ) -> None:
        if cached_ciphers < 1:
            raise ValueError(f"cached_ciphers must be at least 1, not {cached_ciphers}")
        #: Where the subjects' keys are kept.
        self.keys = keys
        #: How long a key (or its absence) is cached in this process.
        self.cache_seconds = cache_seconds
        self._cache: dict[UUID, tuple[AESGCM | None, float]] = {}
        self._cache_limit = cached_ciphers
        self._plans: dict[type[Any], frozenset[str]] = {}
        self._lock = threading.Lock()
        #: True when the event store writes new keys in the events' transaction
        #: (:meth:`pending_keys`); else a new key is created in the key store at once.
        self.staged = False
        self._pending: dict[UUID, bytes] = {}
        #: The same cache by the id's text, as stored JSON holds it (reading needs no UUID).
        self._by_text: dict[str, tuple[AESGCM | None, float]] = {}
        #: Every subject's key (None: destroyed) while a reader of the whole log holds
        #: them (:meth:`hold_all_keys`), by the id's text; None otherwise. Raw keys (32
        #: bytes each): the ciphers made from them are cached in ``_held_ciphers``, at most
        #: ``_cache_limit`` at a time, so holding every key stays small at any number of
        #: customers.
        self._held: dict[str, bytes | None] | None = None
        self._held_ciphers: dict[str, AESGCM] = {}
        self._held_until = 0.0
        self._snapshots: dict[type[Any], bool] = {}

    # ----- keys ---------------------------------------------------------------------
    def _cipher(self, subject: UUID, *, create: bool, new: bool = False) -> AESGCM | None:
        cached = self._cache.get(subject)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        if create and self.staged:
            # Keys of the default store are written in the events' own transaction (see
            # pending_keys): a new customer costs no transaction of its own.
            found = None if new else self.keys.get(subject)
            if found is not None:  # stored (a write outside save() left it pending)
                with self._lock:
                    self._pending.pop(subject, None)
            else:
                key = new_key()
                with self._lock:
                    self._pending[subject] = key
                cipher: AESGCM | None = AESGCM(key)
                self._remember(subject, (cipher, now + self.cache_seconds))
                return cipher
        else:
            found = self.keys.create(subject) if create else self.keys.get(subject)
        cipher = AESGCM(found.key) if found is not None and found.key is not None else None
        if found is not None or create:
            self._remember(subject, (cipher, now + self.cache_seconds))
        return cipher

    def _remember(self, subject: UUID, entry: tuple[AESGCM | None, float]) -> None:
        """Cache a subject's cipher (or its absence), dropping the oldest entry when the
        cache is full (see :data:`CACHED_CIPHERS`)."""
        cache = self._cache
        if subject not in cache and len(cache) >= self._cache_limit:
            oldest = next(iter(cache))
            del cache[oldest]
            self._by_text.pop(str(oldest), None)
        cache[subject] = entry

    def pending_keys(self, subjects: set[UUID]) -> dict[UUID, bytes]:
        """Keys made for these subjects and not yet stored (to store with their events)."""
        with self._lock:
            return {s: k for s, k in self._pending.items() if s in subjects}

    def stored(self, subjects: set[UUID]) -> None:
        """The events of these subjects committed: their new keys are stored with them."""
        with self._lock:
            for subject in subjects:
                self._pending.pop(subject, None)

    def not_stored(self, subjects: set[UUID]) -> None:
        """A write failed: drop the keys made for these subjects (perhaps another process
        stored one first), so a retry reads the key store again."""
        with self._lock:
            for subject in subjects:
                if self._pending.pop(subject, None) is not None:
                    self.evict(subject)

    def forget(self, subject: UUID) -> None:
        """Destroy the subject's key: their sealed personal fields read redacted, for good."""
        self.keys.destroy(subject)
        self.evict(subject)

    def evict(self, subject: UUID) -> None:
        """Drop the subject's cached key (it was destroyed, perhaps by another process)."""
        self._cache.pop(subject, None)
        self._by_text.pop(str(subject), None)
        self._held_ciphers.pop(str(subject), None)

    def hold_all_keys(self) -> bool:
        """Read every subject's key in one query and hold it until :meth:`release_keys`
        (a rebuild reads the whole log: one query, not one per customer, and one cipher
        per key). False (nothing held) if the key store cannot list its keys.

        Held keys obey the cache's rules: after ``cache_seconds`` they are read again (one
        query), so a key destroyed by another process is let go of as soon as a cached one
        would be; reading a ``PersonalDataErased`` drops the subject's held key at once
        (:meth:`saw`), and later events of that subject ask the key store again.

        The keys are held as bytes (about 100 bytes a customer with the dictionary's
        entry); a cipher is built from one when its subject's event is read, and at most
        :data:`CACHED_CIPHERS` of them are kept."""
        load = getattr(self.keys, "all_keys", None)
        if load is None:
            return False
        found: dict[UUID, bytes | None] = load()
        self._held = {str(subject): key for subject, key in found.items()}
        # A subject's key never changes (it is only destroyed): a cipher built from it
        # stays good unless the key is gone now.
        ciphers = self._held_ciphers
        for text in [t for t in ciphers if self._held.get(t) is None]:
            del ciphers[text]
        self._held_until = time.monotonic() + self.cache_seconds
        return True

    def release_keys(self) -> None:
        """Forget the keys :meth:`hold_all_keys` read (the cache works as before)."""
        self._held = None
        self._held_ciphers.clear()

    def _held_cipher(self, subject: str, key: bytes | None) -> AESGCM | None:
        """The cipher of a held key, built on first use and kept among the newest
        :data:`CACHED_CIPHERS`."""
        if key is None:
            return None
        ciphers = self._held_ciphers
        cipher = ciphers.get(subject)
        if cipher is None:
            if len(ciphers) >= self._cache_limit:
                del ciphers[next(iter(ciphers))]
            cipher = ciphers[subject] = AESGCM(key)
        return cipher

    def is_forgotten(self, subject: UUID) -> bool:
        """True when the subject's key was destroyed (asks the key store, not the cache)."""
        found = self.keys.get(subject)
        return found is not None and found.destroyed

    # ----- writing ------------------------------------------------------------------
    def _fields(self, cls: type[Any]) -> frozenset[str]:
        fields = self._plans.get(cls)
        if fields is None:
            fields = (
                payload_personal_fields(cls, ENVELOPE_FIELDS)
                if _is_customer_event(cls)
                else frozenset()
            )
            self._plans[cls] = fields
        return fields

    def may_seal(self, event: Any) -> bool:
        """Whether :meth:`seal` may change this event's state: a customer's snapshot, or an
        event of a class with personal fields (False: written as it is, read fast)."""
        return isinstance(event, Snapshot) or bool(self._fields(type(event)))

    def seal(self, event: Any, state: dict[str, Any]) -> bool:
        """Seal the personal fields of ``state`` (``event`` as JSON) in place; False when
        there was nothing to seal (``state`` unchanged)."""
        model: BaseModel
        if isinstance(event, Snapshot):
            if event.topic != _CUSTOMER_TOPIC:
                return False
            fields = _CUSTOMER_STATE_FIELDS
            target = state["state"]
            model = CustomerState.model_validate(event.state, context=STORED_EVENT_CONTEXT)
            aad = _aad(event.originator_id, event.originator_version, snapshot=True)
        else:
            fields = self._fields(type(event))
            if not fields:
                return False
            target = state
            model = event
            aad = _aad(event.originator_id, event.originator_version, snapshot=False)
        values = {
            name: target[name] for name in fields if target.get(name) not in (None, "", [], {})
        }
        if not values:
            return False
        new = not isinstance(event, Snapshot) and isinstance(event, Customer.Registered)
        cipher = self._cipher(event.originator_id, create=True, new=new)
        redact_fields(model, target, frozenset(values))
        if cipher is None:  # the subject was erased: store the fields redacted only
            return True
        nonce = os.urandom(_NONCE)
        sealed = cipher.encrypt(nonce, orjson.dumps(values), aad)
        target[SEALED] = _VERSION + base64.b64encode(nonce + sealed).decode("ascii")
        return True

    # ----- reading ------------------------------------------------------------------
    def open(self, cls: type[Any], state: dict[str, Any]) -> dict[str, Any]:
        """Decrypt the sealed personal fields of a stored ``state`` of class ``cls`` over
        their redacted form (in place); without the key they stay redacted."""
        snapshot = self._snapshots.get(cls)
        if snapshot is None:
            snapshot = self._snapshots[cls] = isinstance(cls, type) and issubclass(cls, Snapshot)
        target = state.get("state") if snapshot else state
        if not isinstance(target, dict):
            return state
        sealed = target.pop(SEALED, None)
        if not isinstance(sealed, str):
            return state
        subject = str(state["originator_id"])
        held = self._held
        if held is not None and time.monotonic() > self._held_until:
            self.hold_all_keys()  # expired as a cached key would: read them all again
            held = self._held
        if held is not None and subject in held:
            cipher = self._held_cipher(subject, held[subject])
        else:
            cached = self._by_text.get(subject)
            if cached is not None and cached[1] > time.monotonic():
                cipher = cached[0]
            else:
                cipher = self._cipher(UUID(subject), create=False)
                found = self._cache.get(UUID(subject))
                if found is not None:
                    self._by_text[subject] = found
        if cipher is None:
            return state
        raw = binascii.a2b_base64(sealed[3:] if sealed.startswith(_VERSION) else sealed)
        aad = _aad(subject, state["originator_version"], snapshot=snapshot)
        # Over the fields the stored JSON has (a field missing there stays missing).
        for name, value in orjson.loads(cipher.decrypt(raw[:_NONCE], raw[_NONCE:], aad)).items():
            if name in target:
                target[name] = value
        return state

    def saw(self, cls: type[Any], originator_id: Any) -> None:
        """Called for every event read: an erasure read forgets the subject's cached key."""
        if cls is Customer.PersonalDataErased and isinstance(originator_id, UUID):
            self.evict(originator_id)
            if self._held is not None:
                self._held.pop(str(originator_id), None)
            self._held_ciphers.pop(str(originator_id), None)


def _aad(originator_id: UUID | str, version: int, *, snapshot: bool) -> bytes:
    """Binds a ciphertext to its event (or snapshot): it cannot be moved to another."""
    return f"{'snapshot' if snapshot else 'event'}:{originator_id}:{version}".encode()
