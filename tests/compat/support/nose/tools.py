"""nose.tools assertions used by flask-restful 0.3.10's tests, on top of unittest."""
import unittest

_case = unittest.TestCase("__init__")
_case.maxDiff = None

assert_equal = _case.assertEqual
assert_equals = _case.assertEqual
assert_not_equal = _case.assertNotEqual
assert_true = _case.assertTrue
assert_false = _case.assertFalse
assert_raises = _case.assertRaises
assert_in = _case.assertIn
