"""The danmaku app's contract, shared by every service that handles comments.

`comment` holds the comment schema (fields, limits, validation, normalization);
`events` holds the CloudEvents the services exchange through Kafka and HTTP;
`auth` checks who sent an event (the platform's bearer token) and reads a sender's own.
"""
