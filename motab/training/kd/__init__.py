"""The built-in on-policy KD trainer (`motab kd-train`), one concern per module:

config      KDConfig (every training knob, typed, with defaults and checks) and RunOptions (where)
blocks      kd blocks of config: their teachers and prompt sources, the workflow's start-up checks
objectives  the loss registry: name -> Loss(params dataclass, units, fn)
prompts     prompt files, the self-teacher's privileged prompts (OPSD's and PW-OPSD's wording),
            each step's prompt batches
rollouts    sampling the student, re-prompting the same responses, hidden states at the responses
models      student (full or LoRA), teachers, tokenizer, optimizer
step        one step: micro-batches sampled, scored and back-propagated (distillation_loss)
loop        the training loop, resumable state, the finished checkpoint
checkpoint  checkpoints and resumable state written atomically (complete or absent)
processes   one process per GPU (accelerate launch), ranks and devices
command     the command line (flags derived from KDConfig and the losses' params)

config, blocks and objectives import no torch (the Snakefile's config check reads them).
"""
