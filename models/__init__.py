"""The domain: tables, the pure state machine, and the services that apply observations."""
