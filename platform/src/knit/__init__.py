"""knit: Knative's Serving and Eventing model made small.

One folder per concern: `resources` (the resource model and YAML loading), `kafka`
(the embedded broker and client settings), `eventing` (CloudEvents and the KafkaSource
dispatcher), `runtimes` (where instances run), `cli` (the `knit` command).
"""

__version__ = "0.1.0"
