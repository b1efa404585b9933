# The tricklab package (server, worker and trainer) on CUDA-enabled PyTorch.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Debian's headless Chromium: kaleido draws a report's figures as SVG and PNG in it (without it those answer 503).
RUN apt-get update && apt-get install -y --no-install-recommends chromium-headless-shell && rm -rf /var/lib/apt/lists/*

# Dependencies first, so editing the code does not reinstall torch.
COPY pyproject.toml README.md ./
RUN mkdir backend trainer && touch backend/__init__.py trainer/__init__.py \
    && pip install . && pip uninstall -y tricklab

COPY . .
# Editable: the app finds migrations/ beside backend/ at start.
RUN pip install --no-deps -e .

EXPOSE 8000
CMD ["tricklab", "serve", "--host", "0.0.0.0", "--no-worker"]
