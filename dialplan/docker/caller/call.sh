#!/bin/sh
# call.sh [EXTEN]: synthesise speech (1.5 s leading silence), call the PBX with sipp and play it.
set -eu
EXTEN="${1:-100}"
PBX="${PBX:-asterisk:5060}"
TEXT="${TEXT:-Hello, this is your bank. Please confirm your card number and the security code on the back.}"
cd /tmp
espeak-ng -v en-us -w speech.wav "$TEXT"
ffmpeg -nostdin -v error -f lavfi -i anullsrc=r=8000:cl=mono -t 1.5 -i speech.wav \
  -filter_complex '[0][1]concat=n=2:v=0:a=1' -ar 8000 -ac 1 -f mulaw -y speech.ulaw
DURATION_MS=$(( $(stat -c %s speech.ulaw) / 8 + 500 ))
sed -e "s#%{audio}#/tmp/speech.ulaw#" -e "s#%{duration_ms}#${DURATION_MS}#" \
    -e "s#%{caller_name}#demo#" -e "s#%{marker}#/tmp/remote-bye#" /opt/caller/uac.xml.tmpl > uac.xml
sipp "$PBX" -sf uac.xml -s "$EXTEN" -m 1 -l 1 -nostdin -trace_err
if [ -e /tmp/remote-bye ]; then echo "the PBX hung up on us (callguard verdict: spoof)"; else echo "call completed"; fi
