# Sourced by prepare_data.sh and the run scripts: ONE definition of the frame budget, shared by the
# exported rows (env options) and verl (data.mm_processor_kwargs), so env frames and the processor's
# pixel limits agree. Every value can be overridden from the environment.
#   PATCH_SIZE: 16 for Qwen3-VL, 14 for Qwen2.5-VL (spatial merge 2 for both).
#   MAX_PIXELS: pixels per frame the env shows; the processor keeps that size (min_pixels = one
#               merged patch), so a frame costs (h/PATCH_FACTOR)*(w/PATCH_FACTOR) <= MAX_PIXELS/PATCH_FACTOR^2 tokens.
PATCH_SIZE=${PATCH_SIZE:-16}
PATCH_FACTOR=$((PATCH_SIZE * 2))
MAX_PIXELS=${MAX_PIXELS:-65536}
TOKENS_PER_FRAME=$((MAX_PIXELS / (PATCH_FACTOR * PATCH_FACTOR)))
OVERVIEW_FRAMES=${OVERVIEW_FRAMES:-16}
CROP_MAX_FRAMES=${CROP_MAX_FRAMES:-16}
MAX_TURNS=${MAX_TURNS:-6}
ENV_OPTIONS=${ENV_OPTIONS:-"{\"max_turns\": $MAX_TURNS, \"overview_frames\": $OVERVIEW_FRAMES, \"patch_factor\": $PATCH_FACTOR, \"max_pixels\": $MAX_PIXELS, \"crop_max_frames\": $CROP_MAX_FRAMES}"}
