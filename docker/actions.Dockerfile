# The application image (action server, migrations, website gateway): Python 3.11, current rasa-sdk, the tandem package.
FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements/app.lock.txt requirements/tools.txt requirements/
RUN pip install --no-cache-dir -r requirements/tools.txt \
 && uv pip install --system --no-cache -r requirements/app.lock.txt
COPY alembic.ini ./
COPY tandem/ tandem/
COPY actions/ actions/
COPY knowledge/ knowledge/
COPY widget/ widget/
USER 1001
EXPOSE 5055
# Needs ACTION_SERVER_TOKEN; docker-compose.yml sets the host (the compose network) and the token.
CMD ["python", "-m", "actions.server", "--host", "0.0.0.0", "--port", "5055"]
