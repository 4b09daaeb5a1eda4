# The Rasa server: the official Rasa Open Source 3.6.21 image with the trained model and config.
FROM rasa/rasa:3.6.21-full
WORKDIR /app
COPY --chown=1001 config.yml domain.yml endpoints.yml credentials.yml ./
COPY --chown=1001 models/ models/
USER 1001
EXPOSE 5005
# The command (with the API token from the environment) is set by docker-compose.yml.
