"""Views of memgym environments for other JAX RL libraries; each is imported only when asked for, so
`import memgym` never imports gymnax or Jumanji (both optional extras: `pip install 'memgym[gymnax,jumanji]'`).

    from memgym.compat.gymnax import GymnaxEnv      # a gymnax `Environment` (PureJaxRL, rejax, Stoix)
    from memgym.compat.jumanji import JumanjiEnv    # a Jumanji `Environment` with an `action_mask`

Both views flatten the MultiDiscrete action into one Discrete action (`memgym.compat.flat`), because the
trainers these libraries ship handle `Discrete` and `Box` actions, not MultiDiscrete ones.
"""
