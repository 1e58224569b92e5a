"""The platform dashboard: read-only, live, at http://dashboard.knit.localhost:<gateway port>/.

`history` keeps the last minutes of what a runtime reports (pure); `server` serves the page,
a snapshot, a server-sent event stream of snapshots and each Revision's instances as an SVG
chart. A runtime hands the server a `read` function; the local runtime's is in
`knit.runtimes.local.dashboard`.
"""
