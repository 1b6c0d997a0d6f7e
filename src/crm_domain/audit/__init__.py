"""Tamper evidence for the event log: a hash chain, verification, signed exports, proofs."""
