/* fuzz_parser.c — libFuzzer target for the llhttp glue with limits (csrc/http/parser.c) and
 * the connection's feeding logic (csrc/core/conn.c).
 * Input: the 8-byte header of fuzz_common.h (limits, split seed), then raw client bytes.
 * The bytes are fed to a real connection whole, in random splits and (when asked) one at a
 * time, the app finishing each request as it completes; every feeding must satisfy the
 * invariants in fuzz_drive.h and all of them must agree.  A fourth feeding answers each
 * request before its body (the connection drops the rest): it must see the same requests.  Owns nothing global; no Python, no GIL. */
#include "fuzz_drive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < CFG_LEN) return 0;
  fuzz_cfg cfg;
  cfg_read(data, &cfg);
  const uint8_t *in = data + CFG_LEN;
  size_t len = size - CFG_LEN;
  drive_result whole, split, early;
  drive(in, len, &cfg, FEED_WHOLE, &whole);
  drive(in, len, &cfg, FEED_SPLIT, &split);
  compare_results(&whole, &split, "whole vs split");
  drive(in, len, &cfg, FEED_EARLY, &early);
  compare_early(&whole, &early);
  drive_result_free(&early);
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
