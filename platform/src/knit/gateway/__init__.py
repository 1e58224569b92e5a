"""The gateway: Knative's router and activator in one HTTP/1.1 + WebSocket reverse proxy.

`routing` maps a request's Host to a Revision (percent split, tags), `activator` holds
each Revision's ready instances and the requests waiting for a free one, `proxy` moves
the bytes. The runtime keeps both tables up to date.
"""
