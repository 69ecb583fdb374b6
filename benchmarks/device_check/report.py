"""`device_check.md`: the JSON report as tables."""


def _num(value, digits: int = 1) -> str:
  if value is None:
    return '-'
  if isinstance(value, float):
    return f'{value:,.{digits}f}'
  return str(value)


def _pct(value) -> str:
  return '-' if value is None else f'{100 * value:.1f}%'


def markdown(result: dict) -> str:
  env = result['environment']
  lines = [f'# Device check ({result["mode"]}, {result["date"]})', '',
           f'{env["device_count"]} x {env["device_kind"]} ({env["backend"]}), '
           f'{env["host_cores"]} host cores, Python {env["python"]}; '
           + ', '.join(f'{k} {v}' for k, v in env['versions'].items()) + '.',
           f'Device memory (allocator, bytes) at the start: '
           f'{env["memory"] or "not reported by this backend"}; at the end: '
           f'{env.get("memory_after") or "not reported by this backend"}.',
           f'MFU peak: {result["peak"]["source"]}.', '']
  step = result.get('classification')
  if step:
    lines += [f'## Train step: {step["model"]}, {step["dtype"]}, batch {step["batch"]}, '
              f'{step["classes"]} classes ({step["rounds"]} interleaved rounds x '
              f'{step["steps_per_round"]} steps; compiled {step["compile_threads"]} at a time, '
              f'{step["compile_wall_s"]:.0f} s in all)', '',
              '| variant | images/s | step ms (min-max) | x CE | compile s | TFLOP/step | '
              'TFLOP/s | MFU | temp MiB |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for name, row in step['variants'].items():
      lines.append(
          f'| {name} | {row["per_sec"]:,.0f} | {row["step_ms"]:.2f} ({row["step_ms_min"]:.2f}-'
          f'{row["step_ms_max"]:.2f}) | {row["step_time_vs_ce"]:.2f} | {row["compile_s"]:.1f} | '
          f'{_num(row["flops_per_step"] and row["flops_per_step"] / 1e12, 3)} | '
          f'{_num(row["tflops_per_sec"])} | {_pct(row["mfu"])} | '
          f'{_num(row["memory"].get("temp_bytes", 0) / 2**20)} |')
    lines.append('')
  pipe = result.get('pipeline')
  if pipe:
    lines += ['## Host input pipeline vs the step', '',
              f'TrainLoader, {pipe["workers"]} workers, batch {pipe["batch"]}: '
              f'{pipe["images_per_sec"]:,.0f} images/s (start-up {pipe["startup_s"]:.1f} s); '
              f'the CE step consumes {_num(pipe.get("ce_images_per_sec"), 0)} images/s '
              f'(pipeline / step = {_num(pipe.get("pipeline_over_step"), 2)}).', '']
  text = result.get('translation')
  if text:
    lines += ['## Translation step (IWSLT size, synthetic tokens)', '',
              f'{text["model"]}, vocabulary {text["vocab_size"]}, {text["method"]}, '
              f'{text["sentences"]} sentences x {text["tokens_per_side"] // text["sentences"]} '
              f'tokens: {text["tokens_per_sec"]:,.0f} target tokens/s, {text["step_ms"]:.2f} ms a '
              f'step, compile {text["compile_s"]:.1f} s, MFU {_pct(text["mfu"])}.', '']
  train = result.get('training')
  if train:
    lines += [f'## Training: ResNet-18 (D = {train["feature_dim"]}), {train["epochs"]} epochs, '
              f'batch {train["batch"]}, {train["dtype"]}, bundled CIFAR-10 subset', '',
              '| run | top-1 % | NLL | ECE % | seconds |', '| --- | --- | --- | --- | --- |']
    for name, row in train['runs'].items():
      if 'skipped' in row:
        lines.append(f'| {name} | skipped: {row["skipped"]} | | | |')
      else:
        lines.append(f'| {name} | {row["top1"]:.2f} | {row["nll"]:.3f} | {100 * row["ece"]:.2f} | '
                     f'{row["seconds"]:.0f} |')
    lines.append('')
  for name, why in result['skipped'].items():
    lines.append(f'- {name}: skipped ({why})')
  lines.append(f'Total {result["seconds"]:.0f} s.')
  return '\n'.join(lines) + '\n'
