"""Rewrites jax2onnx's NHWC graph into the NCHW form that runtimes are fast at.

jax2onnx keeps JAX's NHWC layout and wraps every `Conv` in a pair of
`Transpose`s; a Flax `Dense` over channels becomes Reshape→Gemm→Reshape with
shapes computed at run time; instance norm is ten elementwise/reduce ops. The
passes here (each a plain function of a `Graph`, in `optimize` order):

  * fold constant subgraphs (kernel transposes) into initializers;
  * `Max(x, 0)` → `Relu`; an `Expand` to the shape its input has → nothing;
  * Reshape→Gemm/MatMul→Reshape over the channel axis of a rank-4 tensor →
    a 1×1 `Conv` between transposes;
  * the mean-based instance-norm chain → `InstanceNormalization` between
    transposes (a multi-style network's per-call scale and bias stay a `Mul`
    and an `Add` after it);
  * layout: every rank-4 tensor is carried as (physical tensor, permutation)
    and transposes are pushed through layout-agnostic ops (elementwise,
    reductions, Pad, Concat, Resize) until they cancel, leaving NCHW tensors
    throughout and a transpose only at the graph's ends (none with NCHW I/O);
  * optionally (`exact_norms`, the ONNX artifact), each `InstanceNormalization`
    → `LayerNormalization` over H, W, then the per-channel `Mul`, `Add`:
    onnxruntime's CPU instance norm sums a plane in float32 (1e-4 off on a
    1024² plane), its layer norm in float64;
  * dead code elimination.

A pattern that does not match leaves the graph as it was (slower, still
correct); the exporter verifies the result against JAX either way.
"""

import itertools

import numpy as np
import onnx
from onnx import helper
from onnx import numpy_helper

NHWC_FROM_NCHW = (0, 2, 3, 1)  # logical NHWC = transpose(physical NCHW, this)
NCHW_FROM_NHWC = (0, 3, 1, 2)

_UNARY = {"Relu", "Sigmoid", "Sqrt", "Neg", "Abs", "Exp", "Log", "Tanh", "Erf",
          "Identity", "Reciprocal", "Floor", "Ceil", "Softplus", "Elu",
          "LeakyRelu", "HardSigmoid", "Cast", "Round", "Sign", "Sin", "Cos"}
_BINARY = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"}
_REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"}


def _compose(a, b):
  """transpose(transpose(x, a), b) == transpose(x, _compose(a, b))."""
  return tuple(a[i] for i in b)


def _inverse(p):
  return tuple(int(i) for i in np.argsort(p))


def _is_identity(p):
  return p is None or tuple(p) == tuple(range(len(p)))


def attr(node, name, default=None):
  for a in node.attribute:
    if a.name == name:
      return helper.get_attribute_value(a)
  return default


class Graph:
  """A mutable view of a ModelProto's main graph: node list + numpy initializers."""

  def __init__(self, model: onnx.ModelProto):
    self.model = model
    g = model.graph
    self.inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    self.nodes = []
    for node in g.node:
      if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
        self.inits[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
      else:
        self.nodes.append(node)
    self.inputs = list(g.input)
    self.outputs = list(g.output)
    self._ids = itertools.count()
    self.ranks = {}
    self.shapes = {}  # of the traced graph's tensors: dims, None where dynamic
    inferred = onnx.shape_inference.infer_shapes(model)
    for vi in itertools.chain(inferred.graph.value_info, g.input, g.output):
      if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
        dims = vi.type.tensor_type.shape.dim
        self.ranks[vi.name] = len(dims)
        self.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    for name, value in self.inits.items():
      self.ranks[name] = value.ndim

  def fresh(self, base):
    return f"{base}_{next(self._ids)}"

  def const(self, array, base="const"):
    name = self.fresh(base)
    self.inits[name] = np.asarray(array)
    self.ranks[name] = np.ndim(array)
    return name

  def node(self, op, inputs, n_out=1, name=None, **attrs):
    outs = [self.fresh(op.lower()) for _ in range(n_out)] if name is None else [name]
    node = helper.make_node(op, list(inputs), outs, name=self.fresh(op), **attrs)
    return node

  def producers(self):
    return {o: n for n in self.nodes for o in n.output}

  def consumers(self):
    users = {}
    for n in self.nodes:
      for i in dict.fromkeys(n.input):  # Mul(d, d) uses d once
        users.setdefault(i, []).append(n)
    for o in self.outputs:
      users.setdefault(o.name, []).append(None)
    return users

  def set_rank(self, rank, *nodes):
    for node in nodes:
      self.ranks.update({o: rank for o in node.output})

  def rank(self, name):
    return self.ranks.get(name)

  def to_model(self) -> onnx.ModelProto:
    """A new ModelProto (value_info re-inferred) after dead code elimination."""
    eliminate_dead_code(self)
    g = helper.make_graph(
        self.nodes, self.model.graph.name, self.inputs, self.outputs,
        [numpy_helper.from_array(np.asarray(v), k) for k, v in self.inits.items()])
    model = helper.make_model(g, opset_imports=self.model.opset_import,
                              producer_name=self.model.producer_name,
                              producer_version=self.model.producer_version)
    model.ir_version = self.model.ir_version
    for p in self.model.metadata_props:
      model.metadata_props.add(key=p.key, value=p.value)
    onnx.checker.check_model(model)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def eliminate_dead_code(graph: Graph) -> None:
  live = {o.name for o in graph.outputs}
  kept = []
  for node in reversed(graph.nodes):
    if any(o in live for o in node.output):
      kept.append(node)
      live.update(i for i in node.input if i)
  graph.nodes = kept[::-1]
  graph.inits = {k: v for k, v in graph.inits.items() if k in live}


def fold_constants(graph: Graph) -> None:
  """Evaluates nodes whose inputs are all initializers (ONNX reference runtime)."""
  from onnx.reference import ReferenceEvaluator
  kept = []
  for node in graph.nodes:
    ins = [i for i in node.input if i]
    if ins and all(i in graph.inits for i in ins) and node.op_type not in ("Shape", "Size"):
      g = helper.make_graph(
          [node], "fold",
          [helper.make_tensor_value_info(
              i, helper.np_dtype_to_tensor_dtype(graph.inits[i].dtype), graph.inits[i].shape)
           for i in dict.fromkeys(ins)],
          [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None)
           for o in node.output])
      model = helper.make_model(g, opset_imports=graph.model.opset_import)
      results = ReferenceEvaluator(model).run(None, {i: graph.inits[i] for i in ins})
      for name, value in zip(node.output, results):
        graph.inits[name] = np.asarray(value)
        graph.ranks[name] = np.ndim(value)
    else:
      kept.append(node)
  graph.nodes = kept


def max_zero_to_relu(graph: Graph) -> None:
  for i, node in enumerate(graph.nodes):
    if node.op_type == "Max" and len(node.input) == 2:
      x, c = node.input
      if c not in graph.inits:
        x, c = c, x
      value = graph.inits.get(c)
      if value is not None and value.size == 1 and float(value.reshape(())) == 0.0 \
          and graph.rank(x) is not None and graph.rank(x) >= graph.rank(c):
        graph.nodes[i] = helper.make_node("Relu", [x], list(node.output), name=node.name)


def drop_noop_expand(graph: Graph) -> int:
  """Expand(x, shape) where x already has `shape` (JAX's broadcast of a
  multi-style norm's [1, 1, 1, C] scale to itself) ⇒ x."""
  dropped = {}
  for node in graph.nodes:
    if node.op_type != "Expand" or node.input[1] not in graph.inits:
      continue
    shape = graph.shapes.get(node.input[0])
    target = [int(v) for v in graph.inits[node.input[1]].reshape(-1)]
    if shape is not None and None not in shape and list(shape) == target:
      dropped[node.output[0]] = node.input[0]
  if not dropped or any(o.name in dropped for o in graph.outputs):
    return 0
  for node in graph.nodes:
    for i, name in enumerate(node.input):
      if name in dropped:
        node.input[i] = dropped[name]
  eliminate_dead_code(graph)
  return len(dropped)


def _replace(graph, last, new_nodes):
  """Puts `new_nodes` where `last` was; what only `last` used goes at DCE."""
  at = graph.nodes.index(last)
  graph.nodes[at:at + 1] = new_nodes


def _replace_with_nchw_op(graph, last, x, op_type, extra_inputs, **attrs) -> None:
  """Puts Transpose(NHWC→NCHW) → `op_type`(x, *extra_inputs) → Transpose(back)
  where `last` was, the result under `last`'s output name, and drops what only
  `last` used. `to_nchw` cancels the transpose pairs later."""
  t1 = graph.node("Transpose", [x], perm=list(NCHW_FROM_NHWC))
  op = graph.node(op_type, [t1.output[0], *extra_inputs], **attrs)
  t2 = graph.node("Transpose", [op.output[0]], name=last.output[0], perm=list(NHWC_FROM_NCHW))
  _replace(graph, last, [t1, op, t2])
  graph.set_rank(4, t1, op, t2)
  eliminate_dead_code(graph)


def dense_to_conv1x1(graph: Graph) -> int:
  """Reshape(x, [-1, C]) → Gemm|MatMul(W[C, O]) (+ bias) → Reshape(rank 4) ⇒ 1×1 Conv."""
  count = 0
  for _ in range(len(graph.nodes)):
    prod, users = graph.producers(), graph.consumers()
    for r2 in graph.nodes:
      if r2.op_type != "Reshape" or graph.rank(r2.output[0]) != 4:
        continue
      mm = prod.get(r2.input[0])
      if mm is None or mm.op_type not in ("Gemm", "MatMul") or len(users[mm.output[0]]) != 1:
        continue
      r1 = prod.get(mm.input[0])
      if r1 is None or r1.op_type != "Reshape" or len(users[r1.output[0]]) != 1:
        continue
      x, shape = r1.input[0], graph.inits.get(r1.input[1])
      w = graph.inits.get(mm.input[1])
      if graph.rank(x) != 4 or shape is None or w is None or w.ndim != 2:
        continue
      if mm.op_type == "Gemm":
        if attr(mm, "transA", 0) or attr(mm, "alpha", 1.0) != 1.0:
          continue
        if attr(mm, "transB", 0):
          w = w.T
      cin, cout = w.shape
      if list(shape) != [-1, cin]:
        continue
      bias = None
      if mm.op_type == "Gemm" and len(mm.input) > 2 and mm.input[2]:
        b = graph.inits.get(mm.input[2])
        if b is None or b.size != cout:
          continue
        bias = (attr(mm, "beta", 1.0) * b).reshape(cout).astype(w.dtype)
      kernel = np.ascontiguousarray(w.T.reshape(cout, cin, 1, 1))
      weights = [graph.const(kernel, "pointwise_kernel")]
      if bias is not None:
        weights.append(graph.const(bias, "pointwise_bias"))
      _replace_with_nchw_op(graph, r2, x, "Conv", weights, kernel_shape=[1, 1])
      count += 1
      break
    else:
      return count
  return count


def _axes(graph, node):
  if len(node.input) > 1 and node.input[1]:
    a = graph.inits.get(node.input[1])
    return None if a is None else sorted(int(v) for v in a.reshape(-1))
  a = attr(node, "axes")
  return None if a is None else sorted(int(v) for v in a)


def fuse_instance_norm(graph: Graph) -> int:
  """mean/var chain over H, W of an NHWC tensor ⇒ InstanceNormalization (NCHW).

  Matches  m = mean(x); d = x - m; v = mean(d·d); r = 1/sqrt(v + eps);
  y = d·r [· scale] [+ bias], the form of `layers.InstanceNorm`.
  """
  count = 0
  while True:
    prod, users = graph.producers(), graph.consumers()
    match = None
    for m_node in graph.nodes:
      match = _match_instance_norm(graph, m_node, prod, users)
      if match:
        break
    if not match:
      return count
    x, eps, scale, bias, last, channels = match
    scale = np.ones(channels, np.float32) if scale is None else scale
    bias = np.zeros(channels, np.float32) if bias is None else bias
    _replace_with_nchw_op(graph, last, x, "InstanceNormalization", [
        graph.const(scale.reshape(channels).astype(np.float32), "norm_scale"),
        graph.const(bias.reshape(channels).astype(np.float32), "norm_bias")], epsilon=eps)
    count += 1


def _only_user(users, name, op_types):
  u = users.get(name, [])
  return u[0] if len(u) == 1 and u[0] is not None and u[0].op_type in op_types else None


def _other(node, name):
  a, b = node.input
  return b if a == name else a if b == name else None


def _match_instance_norm(graph, m_node, prod, users):
  if m_node.op_type != "ReduceMean" or attr(m_node, "keepdims", 1) != 1:
    return None
  x = m_node.input[0]
  if graph.rank(x) != 4 or _axes(graph, m_node) != [1, 2]:
    return None
  sub = _only_user(users, m_node.output[0], {"Sub"})
  if sub is None or list(sub.input) != [x, m_node.output[0]]:
    return None
  d = sub.output[0]
  d_users = users.get(d, [])
  if len(d_users) != 2 or None in d_users:
    return None
  sq = next((u for u in d_users if u.op_type == "Mul" and list(u.input) == [d, d]), None)
  if sq is None:
    return None
  norm_mul = next(u for u in d_users if u is not sq)
  v = _only_user(users, sq.output[0], {"ReduceMean"})
  if v is None or _axes(graph, v) != [1, 2] or attr(v, "keepdims", 1) != 1:
    return None
  add = _only_user(users, v.output[0], {"Add"})
  eps = add is not None and graph.inits.get(_other(add, v.output[0]))
  if add is None or eps is None or eps.size != 1:
    return None
  sqrt = _only_user(users, add.output[0], {"Sqrt"})
  inv = sqrt and _only_user(users, sqrt.output[0], {"Div", "Reciprocal"})
  if not inv:
    return None
  if inv.op_type == "Div":
    one = graph.inits.get(inv.input[0])
    if inv.input[1] != sqrt.output[0] or one is None or one.size != 1 or float(one.reshape(())) != 1:
      return None
  if norm_mul.op_type != "Mul" or _other(norm_mul, d) != inv.output[0]:
    return None
  if len(users.get(inv.output[0], [])) != 1:
    return None
  last, scale, bias = norm_mul, None, None
  channels = None
  mul = _only_user(users, last.output[0], {"Mul"})
  if mul is not None:
    s = graph.inits.get(_other(mul, last.output[0]))
    if s is not None and s.ndim >= 1 and s.size == s.shape[-1]:
      last, scale, channels = mul, s, s.shape[-1]
  add_b = _only_user(users, last.output[0], {"Add"})
  if add_b is not None:
    b = graph.inits.get(_other(add_b, last.output[0]))
    if b is not None and b.ndim >= 1 and b.size == b.shape[-1] and channels in (None, b.shape[-1]):
      last, bias, channels = add_b, b, b.shape[-1]
  if channels is None:  # no constant affine (a multi-style norm's is computed)
    shape = graph.shapes.get(x)
    channels = shape[-1] if shape else None
  if channels is None:
    return None  # channel count unknown
  return x, float(eps.reshape(())), scale, bias, last, channels


def exact_instance_norms(graph: Graph) -> int:
  """NCHW InstanceNormalization(x, s, b) ⇒ LayerNormalization(x, axis=2) · s + b.

  The same function; onnxruntime (1.2x–1.3x, CPU) computes a layer norm's
  statistics in float64 but an instance norm's in float32, whose error on a
  1024² plane (~1e-4 on the normalized values) a trained network carries to
  its output. The per-channel affine is a Mul and an Add on [1, C, 1, 1]
  constants (the layer norm's own scale would be per pixel); a batch norm with
  the batch folded into channels is no faster and needs shape arithmetic.
  """
  count = 0
  for node in list(graph.nodes):
    if node.op_type != "InstanceNormalization":
      continue
    scale = np.asarray(graph.inits[node.input[1]], np.float32).reshape(1, -1, 1, 1)
    bias = np.asarray(graph.inits[node.input[2]], np.float32).reshape(1, -1, 1, 1)
    norm = graph.node("LayerNormalization", [
        node.input[0], graph.const(np.ones(1, np.float32), "one"),
        graph.const(np.zeros(1, np.float32), "zero")],
        axis=2, epsilon=float(attr(node, "epsilon", 1e-5)))
    mul = graph.node("Mul", [norm.output[0], graph.const(scale, "norm_scale")])
    add = graph.node("Add", [mul.output[0], graph.const(bias, "norm_bias")],
                     name=node.output[0])
    _replace(graph, node, [norm, mul, add])
    graph.set_rank(4, norm, mul, add)
    count += 1
  return count


def to_nchw(graph: Graph, io: str = "nhwc") -> None:
  """Carries rank-4 tensors in NCHW; `io` is the layout of the graph's input/output."""
  if io not in ("nhwc", "nchw"):
    raise ValueError(f"io={io!r}: 'nhwc' or 'nchw'")
  env = {}       # original name → (physical name, perm | None)
  cache = {}
  out_nodes = []

  def emit(op, inputs, **attrs):
    node = graph.node(op, inputs, **attrs)
    out_nodes.append(node)
    return node.output[0]

  def phys(name):
    return env.get(name, (name, None))

  def materialize(name, want=None):
    """Physical tensor t with transpose(t, want) == the original tensor `name`."""
    src, p = phys(name)
    p = p or tuple(range(graph.rank(name) or 0))
    w = want or tuple(range(len(p)))
    inv_w = _inverse(w)
    r = tuple(p[inv_w[k]] for k in range(len(p)))
    if _is_identity(r):
      return src
    key = (src, r)
    if key not in cache:
      cache[key] = emit("Transpose", [src], perm=list(r))
    return cache[key]

  def const_for(value, p):
    """An initializer broadcast against a logical rank-4 tensor, in layout p."""
    value = np.asarray(value)
    if value.ndim > 4:
      return None
    value = value.reshape((1,) * (4 - value.ndim) + value.shape)
    return np.ascontiguousarray(value.transpose(_inverse(p)))

  for inp in graph.inputs:
    if graph.rank(inp.name) != 4:
      continue
    if io == "nchw":
      dims = list(inp.type.tensor_type.shape.dim)
      inp.type.tensor_type.shape.ClearField("dim")
      for i in NCHW_FROM_NHWC:
        inp.type.tensor_type.shape.dim.add().CopyFrom(dims[i])
      env[inp.name] = (inp.name, NHWC_FROM_NCHW)
    else:
      env[inp.name] = (emit("Transpose", [inp.name], perm=list(NCHW_FROM_NHWC)), NHWC_FROM_NCHW)

  for node in graph.nodes:
    op = node.op_type
    ins = list(node.input)
    x = ins[0] if ins else None
    p = phys(x)[1] if x else None
    if op in _BINARY or op == "Concat":  # e.g. Div(1, x): the layout comes from x
      p = next((phys(i)[1] for i in ins if phys(i)[1] is not None), None)
    handled = False
    target = graph.inits.get(ins[1]) if op == "Reshape" and len(ins) > 1 else None
    if (target is not None and target.size == 4 and (target[:3] == 1).all()
        and graph.rank(x) != 4):  # a per-channel vector as [1, 1, 1, C]: [1, C, 1, 1]
      nchw = np.array([1, target[3], 1, 1], target.dtype)
      env[node.output[0]] = (emit("Reshape", [x, graph.const(nchw, "shape")]), NHWC_FROM_NCHW)
      handled = True
    elif op == "Transpose" and len(attr(node, "perm", ())) == 4:
      r = _compose(p or (0, 1, 2, 3), tuple(attr(node, "perm")))
      env[node.output[0]] = (phys(x)[0], None if _is_identity(r) else r)
      handled = True
    elif p is None:
      handled = False
    elif op in _UNARY and len(ins) == 1:
      env[node.output[0]] = (emit(op, [phys(x)[0]], **_attrs(node)), p)
      handled = True
    elif op in _BINARY and len(ins) == 2:
      new_ins = []
      for i in ins:
        if i in graph.inits:
          c = const_for(graph.inits[i], p)
          if c is None:
            break
          new_ins.append(graph.const(c, "nchw_const"))
        elif graph.rank(i) == 4:
          new_ins.append(materialize(i, p))
        else:
          break
      else:
        env[node.output[0]] = (emit(op, new_ins, **_attrs(node)), p)
        handled = True
    elif op in _REDUCE and attr(node, "keepdims", 1) == 1:
      axes = _axes(graph, node)
      if axes:
        new_axes = np.array(sorted(p[a % 4] for a in axes), np.int64)
        attrs = {k: v for k, v in _attrs(node).items() if k != "axes"}
        if len(ins) > 1:
          out = emit(op, [phys(x)[0], graph.const(new_axes, "axes")], **attrs)
        else:
          out = emit(op, [phys(x)[0]], axes=[int(a) for a in new_axes], **attrs)
        env[node.output[0]] = (out, p)
        handled = True
    elif op == "Pad" and len(ins) >= 2 and ins[1] in graph.inits and (len(ins) < 4 or not ins[3]):
      pads = graph.inits[ins[1]].reshape(2, 4)
      new = np.zeros_like(pads)
      for a in range(4):
        new[:, p[a]] = pads[:, a]
      rest = ins[2:3]
      out = emit("Pad", [phys(x)[0], graph.const(new.reshape(-1), "pads"), *rest], **_attrs(node))
      env[node.output[0]] = (out, p)
      handled = True
    elif op == "Concat" and all(graph.rank(i) == 4 and i not in graph.inits for i in ins):
      axis = attr(node, "axis") % 4
      out = emit("Concat", [materialize(i, p) for i in ins], axis=p[axis])
      env[node.output[0]] = (out, p)
      handled = True
    elif op == "Resize" and _resize_permutable(graph, node):
      new_ins = [phys(x)[0], ins[1] if len(ins) > 1 else ""]
      for i in ins[2:4]:
        if i:
          v = graph.inits[i]
          new_ins.append(graph.const(np.array([v[_inverse(p)[k]] for k in range(4)], v.dtype),
                                     "resize_arg"))
        else:
          new_ins.append("")
      while new_ins and not new_ins[-1]:
        new_ins.pop()
      env[node.output[0]] = (emit("Resize", new_ins, **_attrs(node)), p)
      handled = True
    if not handled:  # layout-sensitive or unknown op: give it what it expects
      new_ins = [materialize(i) if i in env else i for i in ins]
      node = helper.make_node(op, new_ins, list(node.output), name=node.name, **_attrs(node))
      out_nodes.append(node)

  graph.nodes = out_nodes
  tail = []
  for out in graph.outputs:
    if out.name not in env:
      continue
    if io == "nchw" and graph.rank(out.name) == 4:
      src = materialize(out.name, NHWC_FROM_NCHW)
      dims = list(out.type.tensor_type.shape.dim)
      out.type.tensor_type.shape.ClearField("dim")
      for i in NCHW_FROM_NHWC:
        out.type.tensor_type.shape.dim.add().CopyFrom(dims[i])
    else:
      src = materialize(out.name)
    tail.append((src, out.name))
  for src, name in tail:  # the producer of `src` now writes the output name
    users = graph.consumers()
    producer = next((n for n in graph.nodes if src in n.output), None)
    if producer is not None and users.get(src, []) == [] and src not in graph.inits:
      producer.output[list(producer.output).index(src)] = name
    else:
      graph.nodes.append(helper.make_node("Identity", [src], [name]))


def _resize_permutable(graph, node):
  ins = list(node.input)
  if attr(node, "axes") is not None or graph.rank(ins[0]) != 4:
    return False
  if len(ins) > 1 and ins[1] and graph.inits.get(ins[1], np.zeros(1)).size:
    return False  # a region of interest is layout-specific
  args = [i for i in ins[2:4] if i]
  return len(args) == 1 and args[0] in graph.inits and graph.inits[args[0]].size == 4


def _attrs(node):
  return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def optimize(model: onnx.ModelProto, io: str = "nhwc",
             exact_norms: bool = False) -> tuple[onnx.ModelProto, dict]:
  """All passes in order; returns the new model and what each pass did."""
  graph = Graph(model)
  fold_constants(graph)
  max_zero_to_relu(graph)
  drop_noop_expand(graph)
  report = {"pointwise_convs": dense_to_conv1x1(graph),
            "instance_norms": fuse_instance_norm(graph)}
  to_nchw(graph, io)
  if exact_norms:
    report["exact_instance_norms"] = exact_instance_norms(graph)
  eliminate_dead_code(graph)
  fold_constants(graph)
  model = graph.to_model()
  report["transposes"] = sum(n.op_type == "Transpose" for n in model.graph.node)
  return model, report
