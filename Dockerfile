# The image every component of the compiled Kubeflow / Vertex AI pipeline runs in
# (`pipeline/kubeflow_v2_runner.py`: IHAS_IMAGE), and the Beam workers' image on Dataflow
# (`--sdk_container_image`). It installs exactly the lock's versions, then this project.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/ihas:TAG .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/ihas:TAG
#
# Debian 13 (trixie): TFX 1.21's ml-metadata and TFDV wheels need glibc 2.38+, which Debian 12
# lacks. Not built on the development machines (they have no Docker): see the README.
FROM python:3.13-slim-trixie

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /ihas

# The dependencies first, from the lock alone, so a code change reuses this layer.
COPY requirements/lock-py3.13.txt requirements/
RUN pip install --no-deps -r requirements/lock-py3.13.txt

COPY pyproject.toml README.md ./
COPY ihas_keras ihas_keras
COPY components components
COPY pipeline pipeline
COPY serving serving
COPY experiments experiments
COPY ihas_cli ihas_cli
RUN pip install --no-deps . && python -c "import tfx, ihas_keras, components, pipeline"

# TFX's Kubeflow V2 launcher runs `python -m tfx.orchestration.kubeflow.v2.container...` itself.
ENTRYPOINT []
