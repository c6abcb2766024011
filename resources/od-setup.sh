#!/bin/sh
# The default OD setup procedure of @p2p-ha/node-red-server-manager (docs/recovery.md, "OD
# re-identification"). It runs INSIDE a freshly cloned OD, as root, in one of two ways:
#  - mode `seed` (the default): the replicator puts it on the OD's seed volume (label cidata)
#    with the identity (p2p-identity) and the OD's new host key (p2p-host-key); the image's boot
#    runs it before its SSH server starts (see docs/recovery.md, "What an ODS must contain"), so
#    the first boot is already under the new identity;
#  - mode `guest`: the replicator runs it over SSH after the clone's first boot, then restarts the
#    OD so that everything starts under the new identity.
# Either way the replicator then checks that the OD answers with its new host key and hostname
# before suspending it.
#
# Input (environment): OD_HOSTNAME, OD_ADDRESS, OD_REAL_SERVER (required); OD_SERVICES,
# OD_NETWORK (dhcp | static, default dhcp), OD_PREFIX (default 24), OD_GATEWAY, OD_INTERFACE
# (default eth0), OD_HOST_KEY_FILE (an ed25519 host key in OpenSSH format to install instead of
# making one), OD_MACHINE_ID (32 hex digits to use instead of a random one) (optional).
# Output (stdout): `hostkey=<ssh-ed25519 public key line>`, `machine-id=<id>`, `od-setup=ok`.
# Exit: 0 done; 64 bad input; 69 no way to make an SSH host key; other: the failing step's code.
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

: "${OD_HOSTNAME:?OD_HOSTNAME is required}"
: "${OD_ADDRESS:?OD_ADDRESS is required}"
: "${OD_REAL_SERVER:?OD_REAL_SERVER is required}"
case "$OD_HOSTNAME" in '' | -* | *[!A-Za-z0-9.-]*) echo "od-setup: bad hostname '$OD_HOSTNAME'" >&2; exit 64 ;; esac
case "$OD_ADDRESS" in '' | -* | *[!A-Za-z0-9.:-]*) echo "od-setup: bad address '$OD_ADDRESS'" >&2; exit 64 ;; esac
network=${OD_NETWORK:-dhcp}
prefix=${OD_PREFIX:-24}
iface=${OD_INTERFACE:-eth0}

# 1. Hostname: /etc/hostname, the 127.0.1.1 line of /etc/hosts, the running kernel's.
echo "$OD_HOSTNAME" > /etc/hostname
if [ -f /etc/hosts ]; then
  grep -v '^127\.0\.1\.1[[:space:]]' /etc/hosts > /etc/hosts.od-setup || true
  cat /etc/hosts.od-setup > /etc/hosts
  rm -f /etc/hosts.od-setup
fi
echo "127.0.1.1 $OD_HOSTNAME" >> /etc/hosts
hostname "$OD_HOSTNAME" 2>/dev/null || true

# 2. Address. dhcp: the address comes from the host's DHCP reservation for the OD's MAC (a
#    user-mode NIC's dhcpstart, or `virsh net-update ... ip-dhcp-host`); it is recorded only.
#    static: written into whichever network configuration the image uses.
mkdir -p /etc/p2p
printf 'OD_ADDRESS=%s\nOD_NETWORK=%s\n' "$OD_ADDRESS" "$network" > /etc/p2p/address
if [ "$network" = static ]; then
  if [ -d /etc/netplan ]; then
    gw=""
    [ -n "${OD_GATEWAY:-}" ] && gw="      routes: [{to: default, via: $OD_GATEWAY}]"
    printf 'network:\n  version: 2\n  ethernets:\n    %s:\n      dhcp4: false\n      addresses: [%s/%s]\n%s\n' "$iface" "$OD_ADDRESS" "$prefix" "$gw" > /etc/netplan/90-p2p-od.yaml
    chmod 600 /etc/netplan/90-p2p-od.yaml
    # cloud-init must not rewrite the network on the next boot.
    [ -d /etc/cloud/cloud.cfg.d ] && echo 'network: {config: disabled}' > /etc/cloud/cloud.cfg.d/99-p2p-od-network.cfg
  elif [ -d /etc/systemd/network ]; then
    printf '[Match]\nName=%s\n\n[Network]\nAddress=%s/%s\n' "$iface" "$OD_ADDRESS" "$prefix" > /etc/systemd/network/10-p2p-od.network
    [ -n "${OD_GATEWAY:-}" ] && echo "Gateway=$OD_GATEWAY" >> /etc/systemd/network/10-p2p-od.network
  elif [ -d /etc/network/interfaces.d ]; then
    printf 'auto %s\niface %s inet static\n  address %s/%s\n' "$iface" "$iface" "$OD_ADDRESS" "$prefix" > /etc/network/interfaces.d/p2p-od
    [ -n "${OD_GATEWAY:-}" ] && echo "  gateway $OD_GATEWAY" >> /etc/network/interfaces.d/p2p-od
  else
    echo "od-setup: OD_NETWORK=static but no netplan, systemd-networkd or ifupdown configuration found" >&2
    exit 78
  fi
fi

# 3. Fresh SSH host keys (OpenSSH or dropbear), the ed25519 public key printed for pinning. With
#    OD_HOST_KEY_FILE the ed25519 key is the one given (made by the replicator, already recorded).
pub=""
given=${OD_HOST_KEY_FILE:-}
if [ -n "$given" ] && [ ! -r "$given" ]; then echo "od-setup: OD_HOST_KEY_FILE $given not readable" >&2; exit 66; fi
if [ -d /etc/ssh ] && command -v ssh-keygen >/dev/null 2>&1; then
  rm -f /etc/ssh/ssh_host_*
  if [ -n "$given" ]; then
    cp "$given" /etc/ssh/ssh_host_ed25519_key
    chmod 600 /etc/ssh/ssh_host_ed25519_key
    ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key > /etc/ssh/ssh_host_ed25519_key.pub
  else
    ssh-keygen -A >/dev/null
  fi
  pub=$(cat /etc/ssh/ssh_host_ed25519_key.pub)
elif [ -n "$given" ] && command -v dropbearconvert >/dev/null 2>&1; then
  mkdir -p /etc/dropbear
  rm -f /etc/dropbear/dropbear_*_host_key
  dropbearconvert openssh dropbear "$given" /etc/dropbear/dropbear_ed25519_host_key >/dev/null 2>&1
  pub=$(dropbearkey -y -f /etc/dropbear/dropbear_ed25519_host_key | grep '^ssh-ed25519 ')
elif [ -z "$given" ] && command -v dropbearkey >/dev/null 2>&1; then
  mkdir -p /etc/dropbear
  for t in rsa ecdsa; do
    if [ -f "/etc/dropbear/dropbear_${t}_host_key" ]; then
      rm -f "/etc/dropbear/dropbear_${t}_host_key"
      dropbearkey -t "$t" -f "/etc/dropbear/dropbear_${t}_host_key" >/dev/null 2>&1
    fi
  done
  rm -f /etc/dropbear/dropbear_ed25519_host_key
  dropbearkey -t ed25519 -f /etc/dropbear/dropbear_ed25519_host_key >/dev/null 2>&1
  pub=$(dropbearkey -y -f /etc/dropbear/dropbear_ed25519_host_key | grep '^ssh-ed25519 ')
else
  echo "od-setup: neither ssh-keygen nor dropbearkey (dropbearconvert with OD_HOST_KEY_FILE) found" >&2
  exit 69
fi
echo "hostkey=$pub"

# 4. A fresh machine-id (systemd's tool when there is one; a random 128-bit id otherwise).
rm -f /etc/machine-id /var/lib/dbus/machine-id
if [ -n "${OD_MACHINE_ID:-}" ]; then
  case "$OD_MACHINE_ID" in *[!0-9a-f]*) echo "od-setup: bad OD_MACHINE_ID" >&2; exit 64 ;; esac
  [ ${#OD_MACHINE_ID} -eq 32 ] || { echo "od-setup: bad OD_MACHINE_ID" >&2; exit 64; }
  echo "$OD_MACHINE_ID" > /etc/machine-id
elif command -v systemd-machine-id-setup >/dev/null 2>&1; then
  systemd-machine-id-setup >/dev/null 2>&1
else
  tr -d '-' < /proc/sys/kernel/random/uuid > /etc/machine-id
fi
[ -d /var/lib/dbus ] && ln -sf /etc/machine-id /var/lib/dbus/machine-id
echo "machine-id=$(cat /etc/machine-id)"

# 5. The Node-RED identity: the environment the p2p-store reads when its fields are empty
#    (systemd EnvironmentFile format; a node-red unit or its settings.js loads it).
{
  echo "P2P_HOSTNAME=$OD_HOSTNAME"
  echo "P2P_ADDRESS=$OD_ADDRESS"
  echo "P2P_REAL_SERVER=$OD_REAL_SERVER"
  [ -n "${OD_SERVICES:-}" ] && echo "P2P_SERVICES=$OD_SERVICES"
  true
} > /etc/p2p/node-red.env

# 6. The image's own steps, if its maker added some (executable files, in name order).
if [ -d /etc/p2p/od-setup.d ]; then
  for f in /etc/p2p/od-setup.d/*; do
    [ -x "$f" ] && "$f"
  done
fi

sync
echo "od-setup=ok"
