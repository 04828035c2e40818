# One image for intake, tracker, notifier and the migration step; docker-compose.yml picks
# the command per service. Build: docker build -t duban .
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
# The runtime dependencies only: the `local` extra (embedded Postgres, Tansu broker) and the
# `dev` extra are for development machines, not for the image.
RUN python -m venv /opt/duban && /opt/duban/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/duban/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DUBAN_HOST=0.0.0.0 \
    DUBAN_LOG_FORMAT=json
RUN groupadd --system --gid 10001 duban \
    && useradd --system --uid 10001 --gid duban --no-create-home --shell /usr/sbin/nologin duban
COPY --from=build /opt/duban /opt/duban
# Owned by the service user, so a volume mounted here (the directory checkpoint) is too.
RUN install -d -o 10001 -g 10001 -m 0700 /var/lib/duban /var/lib/duban/directory
WORKDIR /srv/duban
USER 10001:10001
EXPOSE 8001 8002 8003
# Compose overrides this per service; alone, the image serves intake.
CMD ["python", "-m", "services.intake.main"]
