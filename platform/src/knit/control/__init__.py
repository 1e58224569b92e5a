"""The control core: what must run for the applied resources, whatever the runtime."""
