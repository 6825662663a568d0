"""The built-in on-policy KD trainer (`motab kd-train`), one concern per module:

config      KDConfig (every training knob, typed, with defaults and checks) and RunOptions (where)
objectives  the loss registry: name -> Loss(params dataclass, units, fn)
prompts     prompt files, the self-teacher's privileged prompts, each step's prompt batches
rollouts    sampling the student, re-prompting the same responses, hidden states at the responses
models      student (full or LoRA), teachers, tokenizer, optimizer
step        one step: micro-batches sampled, scored and back-propagated (distillation_loss)
loop        the training loop, resumable state, the finished checkpoint
command     the command line (flags derived from KDConfig and the losses' params)

config and objectives import no torch (the Snakefile's config check reads them).
"""
