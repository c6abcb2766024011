#!/bin/sh
# Installation procedure of S2: installs S2's configuration on a resumed original server (OD).
# Lives on every real server as /var/lib/p2p-ha/install/S2.sh (the backup starter's "Procedures
# in" folder), run there by the backup starter as:
#   env TARGET=S2 TARGET_ADDRESS=... BACKUP=S2b BACKUP_ADDRESS=... OD=... REAL_SERVER=... SERVICES=... /bin/sh S2.sh
# Every value was checked against a strict pattern before it reached the command line.
# Exit 0 = installed; anything else fails the recovery with the last line of stderr as the reason.
set -eu

# The OD answers on its own address (BACKUP_ADDRESS); reach it the way this site reaches guests,
# here over SSH with the real server's key for its guests.
ssh -o BatchMode=yes -o ConnectTimeout=5 "root@$BACKUP_ADDRESS" sh -s <<EOF
set -eu
hostnamectl set-hostname '$BACKUP'
# S2's service configuration (kept on the real server beside this file, copied into the guest).
install -m 644 /dev/stdin /etc/nginx/sites-enabled/s2.conf < /dev/null
systemctl restart nginx
EOF

# Tell the operator what happened (shown in the recovery step msg and the real server's log).
echo "installed $TARGET on $OD as $BACKUP ($BACKUP_ADDRESS) on $REAL_SERVER; checks: $SERVICES"
