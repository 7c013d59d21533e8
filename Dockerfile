# mpc-credit in a container: one institution's party daemon, or its HTTP API, per container.
#
#   docker build -t mpc-credit .
#   docker run --rm mpc-credit --version
#   docker run -d --name bank --network host -v /srv/mpc-credit/bank:/var/lib/mpc-credit/bank \
#       mpc-credit party run --config /var/lib/mpc-credit/bank/party.toml
#   docker run -d --name bank-api --network host --volumes-from bank \
#       mpc-credit serve --config /var/lib/mpc-credit/bank/party.toml      # 127.0.0.1:8080
#
# Host networking: the daemon listens on the host name its certificate names (party.toml's
# mpc_listen) and `serve` serves plain HTTP on loopback only; with Docker's bridge network,
# set mpc_listen = "0.0.0.0" and publish the MPC ports, and give `serve` --tls-cert/--tls-key.
# The party folder is mounted, never baked in: it holds the party's private keys. It must be
# owned by uid 10001 (the image's user mpc-credit) with the keys mode 0600. docs/install.md
# has the details. Not built on the development machine (no Docker there): untested.

# --- build: a wheel from the source; the source tree stays out of the final image ----------
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mpc_credit ./mpc_credit
RUN python -m pip wheel --no-cache-dir --no-deps -w /dist .

# --- run --------------------------------------------------------------------------------------
FROM python:3.11-slim
# optional extras, comma-separated: report (matplotlib), optbinning
ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /dist /tmp/dist
RUN set -eux; \
    wheel="$(ls /tmp/dist/mpc_credit-*.whl)"; \
    python -m pip install "${wheel}${EXTRAS:+[${EXTRAS}]}"; \
    python -m pip check; \
    rm -rf /tmp/dist; \
    useradd --system --uid 10001 --user-group --home-dir /var/lib/mpc-credit --create-home \
        --shell /usr/sbin/nologin mpc-credit
USER mpc-credit
WORKDIR /var/lib/mpc-credit
# a party's MPC ports (pki request/init: 12100 and the 7 after it by default) and `serve`'s
EXPOSE 12100-12107 8080
ENTRYPOINT ["mpc-credit"]
CMD ["--help"]
