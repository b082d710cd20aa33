#!/bin/sh
# Makes sure the real services the test suite starts are installed; called by `make pytest`.
#
# Consul: the live Consul suites start `consul agent -dev` (tests/consul_agent.py). The agent
# comes from Debian bullseye's `consul` package (1.8.7, MPL-2.0, the last release before the
# licence change); on a Debian system it is installed from the bullseye suite, pinned low so
# nothing else is taken from bullseye. Without root (or apt) it only says why it cannot, and
# the live Consul suites are skipped with that reason. etcd comes with the dev extra.
# PostgreSQL: the StandardDatabaseManager tests (tests/integration/test_database_manager.py)
# start a throwaway cluster from Debian's `postgresql` package (tests/postgres_server.py);
# it is installed from the system's own suite (apt-get update first).
# Without root it never fails the run (the live suites then skip, saying why); as root a
# failed install fails the run, so CI cannot silently turn the live suites into skips.

set -u

ensure_consul() {
if [ -n "${CONSUL_HTTP_ADDR:-}" ]; then
    echo "ensure_test_services: CONSUL_HTTP_ADDR=$CONSUL_HTTP_ADDR is set; the live Consul suites use that agent"
    return 0
fi

if command -v consul >/dev/null 2>&1; then
    return 0
fi

why=""
if [ "$(id -u)" != "0" ]; then
    why="not root (run 'sudo $0' once, or set CONSUL_HTTP_ADDR to an agent)"
elif ! command -v apt-get >/dev/null 2>&1; then
    why="no apt-get here (install consul 1.8.7 by other means, or set CONSUL_HTTP_ADDR)"
fi
if [ -n "$why" ]; then
    echo "ensure_test_services: consul is not installed and cannot be installed: $why;" \
        "the live Consul suites will be skipped" >&2
    return 0
fi

sources=/etc/apt/sources.list.d/debian-bullseye.sources
preferences=/etc/apt/preferences.d/bullseye-low
if ! grep -qs "bullseye" /etc/apt/sources.list /etc/apt/sources.list.d/*; then
    echo "ensure_test_services: adding Debian bullseye (pin priority 100) for consul"
    cat >"$sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
if [ ! -e "$preferences" ]; then
    cat >"$preferences" <<'EOF'
# Only packages asked for explicitly (e.g. consul/bullseye) come from bullseye.
Package: *
Pin: release n=bullseye
Pin-Priority: 100
EOF
fi

echo "ensure_test_services: installing consul/bullseye (1.8.7)"
if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq consul/bullseye; then
    consul version | head -n 1
else
    echo "ensure_test_services: installing consul/bullseye failed" >&2
    return 1
fi
return 0
}

ensure_postgres() {
    if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "ensure_test_services: PostgreSQL is not installed and cannot be installed here" \
            "(needs root and apt-get); the PostgreSQL tests will be skipped" >&2
        return 0
    fi
    echo "ensure_test_services: installing Debian's postgresql"
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; then
        ls -d /usr/lib/postgresql/*/bin
    else
        echo "ensure_test_services: installing postgresql failed" >&2
        return 1
    fi
    return 0
}

status=0
ensure_consul || status=1
ensure_postgres || status=1
exit $status
