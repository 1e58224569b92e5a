# Python 3.11 on the debootstrapped Debian bookworm, for machines with no registry: Debian's
# python3 in a virtual environment at /opt/venv (first on PATH, so `pip` and the commands pip
# installs are found as in python:3.11-slim).
FROM local/debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
