from traceflops.graph.shapes import TensorSpec, parse_shape_list, parse_tensor, total_bytes


def test_parse_profiler_shape_string():
    specs = parse_shape_list("(float[256,512];float[512,128];int32[])")
    assert specs == [TensorSpec("float32", (256, 512)), TensorSpec("float32", (512, 128)),
                     TensorSpec("int32", ())]
    assert specs[0].num_bytes == 256 * 512 * 4
    assert specs[2].num_elements == 1 and specs[2].num_bytes == 4


def test_resource_entries_keep_positions():
    specs = parse_shape_list("(;float[2,12,12,4])")
    assert specs[0] is None and specs[1] == TensorSpec("float32", (2, 12, 12, 4))
    assert total_bytes(specs) == 2 * 12 * 12 * 4 * 4


def test_unknown_dims_and_missing_values():
    spec = parse_tensor("half[?,8]")
    assert spec.dtype == "float16" and spec.dims == (None, 8) and not spec.known
    assert spec.num_bytes is None and total_bytes([spec]) is None
    assert parse_shape_list(None) is None and parse_shape_list(float("nan")) is None
    assert parse_shape_list("()") == []
    assert parse_tensor("bfloat16[3]").num_bytes == 6


def test_damaged_entries_are_unreadable_not_errors():
    # bytes flipped inside a recorded shape (found by the fuzz tests)
    assert parse_tensor("float[\x00,3,3,32]") is None
    assert parse_tensor("float[4,x]") is None and parse_tensor("float[-5,2]") is None
    assert parse_shape_list("(float[\x00,3];float[3,4])") == [None, TensorSpec("float32", (3, 4))]
