"""Provider adapters: one module per provider (Plivo, Telnyx), one common interface."""
