# The image for gexp's Python steps: only the dependencies (an envs/*.yml); Nextflow mounts
# bin/ (with bin/gexp and its package) into the container and puts it on PATH.
#   CPU:  docker build -t gexp-python:0.1.0 -f envs/gexp.Dockerfile envs/
#   CUDA: docker build -t gexp-python-cuda:0.1.0 --build-arg ENV_FILE=gexp-gpu.yml \
#             --build-arg CUDA=12.6 -f envs/gexp.Dockerfile envs/
#   singularity build gexp-python-0.1.0.sif docker-daemon://gexp-python:0.1.0
# Builders have no GPU, so conda would see no __cuda virtual package and could not install a
# CUDA build of PyTorch: CUDA declares the driver's CUDA version to the solver instead
# (CONDA_OVERRIDE_CUDA). Empty (the CPU image) declares none.
FROM mambaorg/micromamba:1.5.10
ARG ENV_FILE=gexp.yml
ARG CUDA=""
COPY --chown=$MAMBA_USER:$MAMBA_USER ${ENV_FILE} /tmp/env.yml
RUN if [ -n "${CUDA}" ]; then export CONDA_OVERRIDE_CUDA="${CUDA}"; fi \
    && micromamba install -y -n base -f /tmp/env.yml \
    && micromamba clean --all --yes
ENV PATH=/opt/conda/bin:$PATH
