# mnist-pl in a container.
#   docker build -t mnist-pl .                 CPU build (the default)
#   docker run mnist-pl                        trains the CNN
#   docker run mnist-pl --model gan            trains the GAN (any train.py flags work)
# CUDA build: pick a CUDA wheel index, then run with the GPU:
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 -t mnist-pl:cuda .
#   docker run --gpus all mnist-pl:cuda --accelerator gpu
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.9.1
ARG TORCHVISION_VERSION=0.24.1

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# torch first, from the chosen index (CPU wheels are a tenth of the CUDA ones), in its own layer
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

# a regular install: the shipped configs are package data in mnist_pl/configs (the top-level
# `configs` of the repository is a symlink to them, so it need not be copied)
COPY pyproject.toml README.md train.py ./
COPY mnist_pl ./mnist_pl
RUN pip install --no-cache-dir .

# MNIST is downloaded into /app/data on first use; mount volumes to keep data and runs:
#   docker run -v "$PWD/data:/app/data" -v "$PWD/runs:/app/runs" mnist-pl
RUN useradd --create-home --uid 10001 mnist && mkdir -p data runs && chown 10001 data runs
USER 10001
VOLUME ["/app/data", "/app/runs"]

ENTRYPOINT ["python", "train.py"]
CMD ["--model", "cnn"]
