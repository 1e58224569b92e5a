# Apache Kafka 4.x for the kind cluster (manifests/platform/kafka.yaml): one KRaft node, broker and
# controller in one JVM. Debian bookworm's Java 17 and the jars `make kafka-broker` copies from Maven
# Central, started by platform/apache-kafka/apache_kafka.py (`container`), so the broker here has
# the same settings as the tests' one. On the Python base images.sh picks (for the script; Debian's
# Java needs bookworm: python:3.11-slim-bookworm online, knit/python:3.11-bookworm offline).
# platform/kube/images.sh builds it from a staged context, nothing else of the repository in it:
#   lib/              .kafka/lib (the jars)
#   apache_kafka.py   log4j2.xml   from platform/apache-kafka/
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
# Slim Debian images drop /usr/share/man, where the JRE's postinst links its man pages.
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/kafka && chown 10001 /var/lib/kafka
COPY lib /opt/kafka/lib
COPY apache_kafka.py log4j2.xml /opt/kafka/
# Any non-root user will do; Kubernetes' runAsNonRoot needs a numeric one.
USER 10001
EXPOSE 9092
ENTRYPOINT ["python", "/opt/kafka/apache_kafka.py"]
# The manifest says where clients find it; e.g. with docker run -p 127.0.0.1:9092:9092:
CMD ["container", "--lib", "/opt/kafka/lib", "--data-dir", "/var/lib/kafka", "--advertised-host", "127.0.0.1"]
