# The image for gexp's Python steps: only the dependencies (envs/gexp.yml); Nextflow mounts
# bin/ (with bin/gexp and its package) into the container and puts it on PATH.
#   docker build -t gexp-python:0.1.0 -f envs/gexp.Dockerfile envs/
#   singularity build gexp-python-0.1.0.sif docker-daemon://gexp-python:0.1.0
FROM mambaorg/micromamba:1.5.10
COPY --chown=$MAMBA_USER:$MAMBA_USER gexp.yml /tmp/gexp.yml
RUN micromamba install -y -n base -f /tmp/gexp.yml && micromamba clean --all --yes
ENV PATH=/opt/conda/bin:$PATH
