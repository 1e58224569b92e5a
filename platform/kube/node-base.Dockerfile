# kind's node base (local/kind-base:bookworm, see node-image.sh) without a registry: kind's own
# images/base/files (from the sigs.k8s.io/kind module in the Go module cache, copied as files/ into
# the build context) on the debootstrapped Debian, with Debian's systemd, containerd, runc
# and CNI plugins in place of the release downloads kind's images/base/Dockerfile makes.
FROM local/debian:bookworm
COPY files/usr/local/bin/ /usr/local/bin/
COPY files/kind/ /kind/
RUN chmod 755 /usr/local/bin/* /kind/bin/* && DEBIAN_FRONTEND=noninteractive clean-install \
      systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod libseccomp2 pigz fuse-overlayfs \
      e2fsprogs bash ca-certificates curl jq procps containerd runc containernetworking-plugins socat
COPY files/etc/ /etc/
RUN true \
    && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \
    && rm -f /lib/systemd/system/multi-user.target.wants/* \
    && rm -f /etc/systemd/system/*.wants/* \
    && rm -f /lib/systemd/system/local-fs.target.wants/* \
    && rm -f /lib/systemd/system/sockets.target.wants/*udev* \
    && rm -f /lib/systemd/system/sockets.target.wants/*initctl* \
    && rm -f /lib/systemd/system/basic.target.wants/* \
    && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \
    && ln -sf /usr/lib/systemd/systemd /sbin/init \
    && ln -s /usr/bin/containerd /usr/local/bin/containerd \
    && mkdir -p /opt/cni/bin && for p in host-local loopback ptp portmap bridge; do ln -s /usr/lib/cni/$p /opt/cni/bin/$p; done \
    && ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \
    && systemctl enable containerd.service && systemctl enable undo-mount-hacks.service && systemctl mask systemd-binfmt.service \
    && mkdir -p /etc/kubernetes/manifests
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]
