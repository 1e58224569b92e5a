# kube-proxy on the debootstrapped Debian image (local/debian:bookworm, see node-image.sh): it needs
# iptables (legacy, as in the kind node), conntrack, ipset and nftables beside its static binary.
FROM local/debian:bookworm
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables conntrack ipset nftables kmod && rm -rf /var/lib/apt/lists/* \
 && update-alternatives --set iptables /usr/sbin/iptables-legacy && update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy
COPY kube-proxy /usr/local/bin/
