"""crm-core adapters."""
