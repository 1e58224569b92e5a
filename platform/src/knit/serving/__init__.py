"""Serving: Service -> Configuration -> Revision -> Route, as in Knative.

`revisions` stamps immutable Revisions out of a Service's template, `traffic` resolves a
Service's traffic block into a Route, `validation` checks a Service on its own; all pure.
"""
