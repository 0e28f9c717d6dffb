#!/usr/bin/env bash
# Nextflow started as its official launcher starts it, from the jars that `make nextflow`
# copied from Maven Central next to this script. Offline: no plugin registry, no update check.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Without NXF_HOME, Nextflow runs plugins in development mode.
export NXF_HOME="${NXF_HOME:-$here/home}"
export NXF_OFFLINE="${NXF_OFFLINE:-true}"
export NXF_DISABLE_CHECK_LATEST="${NXF_DISABLE_CHECK_LATEST:-true}"
opens=""
for pkg in java.lang java.io java.nio java.net java.util java.util.concurrent.locks \
    java.util.concurrent.atomic java.util.regex sun.nio.ch sun.nio.fs sun.nio.cs \
    sun.net.www.protocol.http sun.net.www.protocol.https sun.net.www.protocol.ftp \
    sun.net.www.protocol.file jdk.internal.misc jdk.internal.vm; do
    opens+=" --add-opens=java.base/$pkg=ALL-UNNAMED"
done
# shellcheck disable=SC2086
exec "${JAVA_CMD:-java}" -Dfile.encoding=UTF-8 -Djava.awt.headless=true $opens \
    ${NXF_OPTS:-} -cp "$here/lib/*" nextflow.cli.Launcher "$@"
