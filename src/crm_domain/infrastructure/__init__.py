"""Plumbing under the CRM's rules: where events are stored and how they are read back.

The model (``crm_domain.customer``, ``account``, ``values``, ``commands``) says what the CRM
allows; this package keeps it: the store URL and its databases (:mod:`.storage`), events as
JSON (:mod:`.persistence`), the event store application (:mod:`.eventstore`), the SQLite and
PostgreSQL recorders' fixes (:mod:`.sqlite_subscription`, :mod:`.postgres_recorder`), which
also write the hash chain of every stored event (:mod:`.hashchain`), the
library internals we rely on (:mod:`.compat`), the event catalog writer (:mod:`.catalog`)
and the garbage-collector setting of bulk jobs (:mod:`.collector`).
"""
