from musicenv.registration import register_envs

register_envs()
