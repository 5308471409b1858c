/* fuzz_parser.c — libFuzzer target for the llhttp glue with limits (csrc/http/parser.c).
 * Input: the 8-byte header of fuzz_common.h (limits, split seed), then raw client bytes.
 * The bytes are fed whole, in random splits and (when asked) one at a time, with pauses and
 * resumes as the server does for pipelining; every feeding must satisfy the invariants in
 * fuzz_drive.h and all of them must agree.  Owns nothing global; no Python, no GIL. */
#include "fuzz_drive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < CFG_LEN) return 0;
  fuzz_cfg cfg;
  cfg_read(data, &cfg);
  const uint8_t *in = data + CFG_LEN;
  size_t len = size - CFG_LEN;
  drive_result whole, split;
  drive(in, len, &cfg, FEED_WHOLE, &whole);
  drive(in, len, &cfg, FEED_SPLIT, &split);
  compare_results(&whole, &split, "whole vs split");
  if (cfg.bytewise || len <= 512) {
    drive_result bw;
    drive(in, len, &cfg, FEED_BYTEWISE, &bw);
    compare_results(&whole, &bw, "whole vs bytewise");
    drive_result_free(&bw);
  }
  drive_result_free(&whole);
  drive_result_free(&split);
  return 0;
}
