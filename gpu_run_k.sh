source .whl/setup.sh >/dev/null
R=$PWD; export POSEFW_DATA=$R/.data
cd /tmp
for d in cupy-full cupy-partial numba-full torch-full; do
  timeout 120 python3 -m posefw conformance --decoder $d --input torch-cuda --json $OUT/conformance-h100-$d.json 2>&1 | grep -v Warn | tail -4
done
timeout 200 python3 -m posefw conformance --engines torch:fp16,torch:fp16+fuse_gelu,onnxruntime --json $OUT/engine-parity-h100.json 2>&1 | grep -v Warn | tail -12
