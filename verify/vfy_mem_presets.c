/* vfy_mem_presets.c: built-in models for `subbit mem PRESET`. Each is the
 * model's public config.json, cut to the fields vfy_mem_from_config reads
 * (values unchanged), with its source beside it. They go through the same
 * parser as a user's config.json. */
#include <stddef.h>

#include "vfy_mem.h"

static const struct vfy_mem_preset presets[] = {
    /* huggingface.co/meta-llama/Llama-2-7b-hf/blob/main/config.json */
    { "Llama-2-7B", "huggingface.co/meta-llama/Llama-2-7b-hf config.json",
      "{\"model_type\": \"llama\", \"hidden_size\": 4096, \"intermediate_size\": 11008,"
      " \"num_hidden_layers\": 32, \"num_attention_heads\": 32, \"num_key_value_heads\": 32,"
      " \"vocab_size\": 32000, \"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-05,"
      " \"tie_word_embeddings\": false}" },
    /* huggingface.co/meta-llama/Llama-2-13b-hf/blob/main/config.json */
    { "Llama-2-13B", "huggingface.co/meta-llama/Llama-2-13b-hf config.json",
      "{\"model_type\": \"llama\", \"hidden_size\": 5120, \"intermediate_size\": 13824,"
      " \"num_hidden_layers\": 40, \"num_attention_heads\": 40, \"num_key_value_heads\": 40,"
      " \"vocab_size\": 32000, \"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-05,"
      " \"tie_word_embeddings\": false}" },
    /* huggingface.co/meta-llama/Llama-2-70b-hf/blob/main/config.json */
    { "Llama-2-70B", "huggingface.co/meta-llama/Llama-2-70b-hf config.json",
      "{\"model_type\": \"llama\", \"hidden_size\": 8192, \"intermediate_size\": 28672,"
      " \"num_hidden_layers\": 80, \"num_attention_heads\": 64, \"num_key_value_heads\": 8,"
      " \"vocab_size\": 32000, \"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-05,"
      " \"tie_word_embeddings\": false}" },
    /* huggingface.co/meta-llama/Meta-Llama-3-8B/blob/main/config.json */
    { "Llama-3-8B", "huggingface.co/meta-llama/Meta-Llama-3-8B config.json",
      "{\"model_type\": \"llama\", \"hidden_size\": 4096, \"intermediate_size\": 14336,"
      " \"num_hidden_layers\": 32, \"num_attention_heads\": 32, \"num_key_value_heads\": 8,"
      " \"vocab_size\": 128256, \"max_position_embeddings\": 8192, \"rope_theta\": 500000.0,"
      " \"rms_norm_eps\": 1e-05, \"tie_word_embeddings\": false}" },
    /* huggingface.co/meta-llama/Meta-Llama-3-70B/blob/main/config.json */
    { "Llama-3-70B", "huggingface.co/meta-llama/Meta-Llama-3-70B config.json",
      "{\"model_type\": \"llama\", \"hidden_size\": 8192, \"intermediate_size\": 28672,"
      " \"num_hidden_layers\": 80, \"num_attention_heads\": 64, \"num_key_value_heads\": 8,"
      " \"vocab_size\": 128256, \"max_position_embeddings\": 8192, \"rope_theta\": 500000.0,"
      " \"rms_norm_eps\": 1e-05, \"tie_word_embeddings\": false}" },
    /* huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json */
    { "Mixtral-8x7B", "huggingface.co/mistralai/Mixtral-8x7B-v0.1 config.json",
      "{\"model_type\": \"mixtral\", \"hidden_size\": 4096, \"intermediate_size\": 14336,"
      " \"num_hidden_layers\": 32, \"num_attention_heads\": 32, \"num_key_value_heads\": 8,"
      " \"num_local_experts\": 8, \"num_experts_per_tok\": 2, \"vocab_size\": 32000,"
      " \"max_position_embeddings\": 32768, \"rope_theta\": 1000000.0, \"sliding_window\": null,"
      " \"rms_norm_eps\": 1e-05, \"tie_word_embeddings\": false}" },
    /* huggingface.co/Qwen/Qwen1.5-MoE-A2.7B/blob/main/config.json (the same
     * fields appear in the Qwen1.5-MoE-A2.7B-Chat-GPTQ-Int4 config) */
    { "Qwen2-MoE-A2.7B", "huggingface.co/Qwen/Qwen1.5-MoE-A2.7B config.json",
      "{\"model_type\": \"qwen2_moe\", \"hidden_size\": 2048, \"intermediate_size\": 5632,"
      " \"moe_intermediate_size\": 1408, \"shared_expert_intermediate_size\": 5632,"
      " \"num_experts\": 60, \"num_experts_per_tok\": 4, \"decoder_sparse_step\": 1,"
      " \"norm_topk_prob\": false, \"num_hidden_layers\": 24, \"num_attention_heads\": 16,"
      " \"num_key_value_heads\": 16, \"vocab_size\": 151936, \"max_position_embeddings\": 8192,"
      " \"max_window_layers\": 21, \"use_sliding_window\": false, \"sliding_window\": 32768,"
      " \"rope_theta\": 1000000.0, \"tie_word_embeddings\": false}" },
    /* huggingface.co/google/switch-c-2048/blob/refs%2Fpr%2F6/config.json.
     * That file says num_decoder_layers 12 beside num_sparse_decoder_layers
     * 15; the released checkpoint has 15 decoder blocks (flaxformer
     * t5x/configs/moe/models/switch_c.gin: NUM_DECODER_LAYERS = 15), and 15
     * gives the published 1.571T parameters (3142 GB bf16, QMoE Table 6), so
     * we use 15. Switch routing is top-1 (num_selected_experts default). */
    { "Switch-c2048", "huggingface.co/google/switch-c-2048 config.json (num_decoder_layers 15)",
      "{\"model_type\": \"switch_transformers\", \"d_model\": 2080, \"d_ff\": 6144,"
      " \"d_kv\": 64, \"num_heads\": 30, \"num_layers\": 15, \"num_decoder_layers\": 15,"
      " \"num_experts\": 2048, \"num_sparse_encoder_layers\": 15,"
      " \"num_sparse_decoder_layers\": 15, \"encoder_sparse_step\": 1,"
      " \"relative_attention_num_buckets\": 32, \"vocab_size\": 32128,"
      " \"is_gated_act\": false, \"router_bias\": false}" },
    /* huggingface.co/google/gemma-2-9b/blob/main/config.json: no
     * tie_word_embeddings (tied, the default) and no sliding_window_pattern
     * (the layers alternate, the even ones windowed) */
    { "Gemma-2-9B", "huggingface.co/google/gemma-2-9b config.json",
      "{\"model_type\": \"gemma2\", \"hidden_size\": 3584, \"intermediate_size\": 14336,"
      " \"num_hidden_layers\": 42, \"num_attention_heads\": 16, \"num_key_value_heads\": 8,"
      " \"head_dim\": 256, \"vocab_size\": 256000, \"max_position_embeddings\": 8192,"
      " \"sliding_window\": 4096}" },
    /* huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json (the
     * main model; the MTP module, num_nextn_predict_layers 1, is not counted,
     * as in the 671B figure of the model card) */
    { "DeepSeek-V3", "huggingface.co/deepseek-ai/DeepSeek-V3 config.json",
      "{\"model_type\": \"deepseek_v3\", \"hidden_size\": 7168, \"intermediate_size\": 18432,"
      " \"moe_intermediate_size\": 2048, \"num_hidden_layers\": 61,"
      " \"num_attention_heads\": 128, \"num_key_value_heads\": 128, \"n_shared_experts\": 1,"
      " \"n_routed_experts\": 256, \"num_experts_per_tok\": 8, \"n_group\": 8,"
      " \"topk_group\": 4, \"first_k_dense_replace\": 3, \"moe_layer_freq\": 1,"
      " \"q_lora_rank\": 1536, \"kv_lora_rank\": 512, \"qk_nope_head_dim\": 128,"
      " \"qk_rope_head_dim\": 64, \"v_head_dim\": 128, \"vocab_size\": 129280,"
      " \"max_position_embeddings\": 163840, \"tie_word_embeddings\": false}" },
};

size_t vfy_mem_preset_count(void)
{
    return sizeof presets / sizeof presets[0];
}

const struct vfy_mem_preset *vfy_mem_preset_get(size_t i)
{
    return i < vfy_mem_preset_count() ? &presets[i] : NULL;
}
