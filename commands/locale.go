package commands

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Languages lists the shipped message catalogs; English is the reference
// every other catalog must cover (a test checks keys and format verbs).
var Languages = []string{"en", "de", "ja"}

// Lang maps a platform locale to a shipped language: Discord says "de" or
// "en-US", Slack "de-DE" or "ja-JP". Anything else is English.
func Lang(locale string) string {
	l := strings.ToLower(strings.TrimSpace(locale))
	l, _, _ = strings.Cut(strings.ReplaceAll(l, "_", "-"), "-")
	if _, ok := catalogs[l]; ok {
		return l
	}
	return "en"
}

// T formats the message key in the language of locale, falling back to
// English for a key the language lacks (the completeness test prevents
// that) and to the key itself for an unknown key.
func T(locale, key string, args ...any) string {
	msg, ok := catalogs[Lang(locale)][key]
	if !ok {
		if msg, ok = catalogs["en"][key]; !ok {
			return key
		}
	}
	if len(args) == 0 {
		return msg
	}
	return fmt.Sprintf(msg, args...)
}

// CatalogKeys returns the keys of a language's catalog, sorted (for tests).
func CatalogKeys(lang string) []string {
	out := make([]string, 0, len(catalogs[lang]))
	for k := range catalogs[lang] {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Message returns the raw catalog entry (for tests).
func Message(lang, key string) (string, bool) {
	m, ok := catalogs[lang][key]
	return m, ok
}

var catalogs = map[string]map[string]string{
	"en": {
		"slack_nsfw_refused": "🔞 `%s` is tagged NSFW: it runs only in channels an admin allowed (`@easel admin nsfw on`). Nothing was queued.",
		"slack_invalid":      "⚠️ %s. Try `--help`.",
		"slack_done":         "Done · %d×%d · %d steps · seed %s",
		"queued":             "Queued — #%d in line",
		"waiting_backend":    " — waiting for a GPU backend (%s)",
		"backend_down":       "%s unreachable since %s",
		"eta":                ", ~%s",
		"starting":           "Starting…",
		"starting_on":        "Starting on %s…",
		"left":               " · ~%ds left",
		"retrying":           "Retrying in %.0fs: %s",
		"done":               "%d×%d · %d steps · cfg %g · seed %s",
		"seed_subseed":       "%d (variation subseed %d)",
		"upscaled":           "Upscaled ×%g (image %d of `%s`)",
		"upscaling":          "Upscaling…",
		"upscale_queued":     "Upscale queued — #%d in line",
		"canceled":           "Canceled.",
		"canceled_job":       "Canceled `%s`.",
		"failed":             "❌ %s",
		"relaxed":            " (relax mode: you are over today's quota, so this runs after everyone else's)",
		"button_cancel":      "Cancel",
		"button_reroll":      "Reroll",
		"nsfw_refused":       "🔞 %q is tagged NSFW: it runs only in age-restricted channels (or where an admin allows it). Nothing was queued.",
		"invalid_here":       "⚠️ %s on this server",
		"refused":            "⏳ %s",
		"forbidden":          "🚫 %s",
		"no_such_job":        "No such job.",
		"no_such_image":      "No such image.",
		"finished":           "That job already finished.",
		"internal":           "Something went wrong on our side; please try again.",
		"not_owner":          "🚫 Only the person who asked (or a server admin) can use these buttons.",
		"no_jobs":            "You have no jobs in line.",
		"no_jobs_to_cancel":  "You have no jobs to cancel.",
		"usage":              "You made %d images today (%s).",
		"no_limit":           "no daily limit",
		"usage_left":         "%d left of %d; resets in %s",
		"your_defaults":      "Your defaults: `%s`",
		"defaults_shown":     "Defaults here (server < channel): server `%s`, channel `%s`",
		"defaults_set":       "Set the %s default `%s` to `%s`.",
		"scope_server":       "server",
		"scope_channel":      "channel",
		"spoilers_on":        "Images on this server are now sent as spoilers.",
		"spoilers_off":       "Images on this server are no longer sent as spoilers.",
		"nsfw_channel_on":    "NSFW-tagged models may now run in this channel.",
		"nsfw_channel_off":   "NSFW-tagged models may no longer run in this channel.",
		"no_models":          "No GPU worker is advertising its models right now.",
		"unknown_command":    "Unknown command.",

		// history (Discord /history, Slack @easel history)
		"history_title":         "Your finished images, newest first:",
		"history_empty":         "You have no finished images yet. Make one with /imagine.",
		"history_entry":         "%s · %d×%d · seed %s · %s",
		"history_default_model": "default model",
		"history_random_seed":   "random",
		"history_images":        "%d image(s)",
		"history_expired":       "(images expired)",
		"button_newer":          "Newer",
		"button_older":          "Older",
		"button_more":           "More",

		// Discord /queue, /models, upscale answers, /easel-admin and buttons
		"status_queued":      "queued",
		"status_dispatched":  "starting",
		"status_running":     "running",
		"queue_place":        " — #%d in line, ~%s",
		"models_title":       "Models",
		"models_loaded":      " (loaded)",
		"models_samplers":    "Samplers",
		"models_schedulers":  "Schedulers",
		"models_loras":       "LoRAs",
		"upscale_of":         "**U%d** of `%s`",
		"pick_subcommand":    "Pick a subcommand.",
		"unknown_subcommand": "Unknown subcommand.",
		"policy_settable":    "Settable: %s",
		"policy_set":         "Set `%s` to `%s`.",
		"usage_reset":        "Usage reset for <@%s>.",
		"user_blocked":       "<@%s> blocked.",
		"user_unblocked":     "<@%s> unblocked.",
		"top_members":        "Top members today:",
		"top_member":         "<@%s>: %d images",
		"not_easel_button":   "This button is not from Easel.",
		"unknown_button":     "Unknown button.",

		// Slack buttons
		"slack_not_owner":       "🚫 Only the person who asked (or a workspace admin) can use these buttons.",
		"slack_upscaling_image": "Upscaling image %d…",
		// Slack admin replies and delivery-problem notices
		"slack_admin_only":         "🚫 Only workspace admins and owners can change Easel's settings.",
		"slack_admin_done":         "Done.",
		"slack_admin_help":         "Admin commands: `admin policy`, `admin set <field> <value>`, `admin reset @user`, `admin block @user`, `admin unblock @user`, `admin nsfw on|off` (this channel), `admin defaults [channel] <field> <value>` (empty value clears).",
		"slack_defaults_shown":     "Defaults (workspace < channel): workspace `%s`, this channel `%s`",
		"scope_workspace":          "workspace",
		"slack_submitting":         "Submitting…",
		"slack_working_invite":     "⏳ Working on it. I'm not a member of this channel, so I'll send the finished picture through this command, without progress or buttons. To get those (and mentions) here, invite me: type `/invite @` followed by my name in this channel.",
		"slack_edited":             "✏️ Editing a message doesn't start a new picture. Mention me in a new message instead.",
		"slack_post_no_access":     "🚫 I can't post in this channel (%s). Invite me with `/invite @` followed by my name, or use `/imagine` here: I'll answer through the command.",
		"slack_post_ratelimited":   "⏳ Slack is limiting how fast I can post in this channel; nothing was queued. Please try again in a minute.",
		"slack_post_missing_scope": "🚫 I'm missing a Slack permission (%s); ask a workspace admin to reinstall the app. Nothing was queued.",
		"slack_post_failed":        "⚠️ I couldn't post my reply (%s), so nothing was queued. Please try again.",
		"slack_share_failed":       "Your picture `%s` is done, but I couldn't share it here (%s).",
		"slack_upload_failed":      "Your picture `%s` is done, but I couldn't upload it (%s).",
		"slack_update_failed":      "Your picture `%s` finished, but I couldn't update its message (%s): %s",
		"slack_direct_note":        "I couldn't answer your `/imagine` in <#%s> through the command (%s: Slack keeps a command's reply link for 30 minutes and 5 messages), so here it is. Invite me to the channel (`/invite @` followed by my name) to get results there.",
	},
	"de": {
		"slack_nsfw_refused": "🔞 `%s` ist als NSFW markiert: Es läuft nur in Kanälen, die ein Admin erlaubt hat (`@easel admin nsfw on`). Nichts wurde eingereiht.",
		"slack_invalid":      "⚠️ %s. Siehe `--help`.",
		"slack_done":         "Fertig · %d×%d · %d Schritte · Seed %s",
		"queued":             "In der Warteschlange — Platz %d",
		"waiting_backend":    " — wartet auf ein GPU-Backend (%s)",
		"backend_down":       "%s nicht erreichbar seit %s",
		"eta":                ", ~%s",
		"starting":           "Wird gestartet…",
		"starting_on":        "Startet auf %s…",
		"left":               " · noch ~%ds",
		"retrying":           "Neuer Versuch in %.0fs: %s",
		"done":               "%d×%d · %d Schritte · CFG %g · Seed %s",
		"seed_subseed":       "%d (Variations-Subseed %d)",
		"upscaled":           "Hochskaliert ×%g (Bild %d von `%s`)",
		"upscaling":          "Wird hochskaliert…",
		"upscale_queued":     "Hochskalierung in der Warteschlange — Platz %d",
		"canceled":           "Abgebrochen.",
		"canceled_job":       "`%s` abgebrochen.",
		"failed":             "❌ %s",
		"relaxed":            " (Relax-Modus: Du hast dein heutiges Kontingent überschritten, daher läuft dies nach allen anderen)",
		"button_cancel":      "Abbrechen",
		"button_reroll":      "Neu würfeln",
		"nsfw_refused":       "🔞 %q ist als NSFW markiert: Es läuft nur in altersbeschränkten Kanälen (oder wo ein Admin es erlaubt). Nichts wurde eingereiht.",
		"invalid_here":       "⚠️ %s auf diesem Server",
		"refused":            "⏳ %s",
		"forbidden":          "🚫 %s",
		"no_such_job":        "Diesen Auftrag gibt es nicht.",
		"no_such_image":      "Dieses Bild gibt es nicht.",
		"finished":           "Dieser Auftrag ist schon beendet.",
		"internal":           "Bei uns ist etwas schiefgegangen; bitte versuche es noch einmal.",
		"not_owner":          "🚫 Nur wer gefragt hat (oder ein Server-Admin) kann diese Schaltflächen benutzen.",
		"no_jobs":            "Du hast keine Aufträge in der Warteschlange.",
		"no_jobs_to_cancel":  "Du hast keine Aufträge zum Abbrechen.",
		"usage":              "Du hast heute %d Bilder erstellt (%s).",
		"no_limit":           "kein Tageslimit",
		"usage_left":         "noch %d von %d; Zurücksetzung in %s",
		"your_defaults":      "Deine Standardwerte: `%s`",
		"defaults_shown":     "Standardwerte hier (Server < Kanal): Server `%s`, Kanal `%s`",
		"defaults_set":       "Standardwert (%s) `%s` auf `%s` gesetzt.",
		"scope_server":       "Server",
		"scope_channel":      "Kanal",
		"spoilers_on":        "Bilder auf diesem Server werden jetzt als Spoiler gesendet.",
		"spoilers_off":       "Bilder auf diesem Server werden nicht mehr als Spoiler gesendet.",
		"nsfw_channel_on":    "NSFW-markierte Modelle dürfen jetzt in diesem Kanal laufen.",
		"nsfw_channel_off":   "NSFW-markierte Modelle dürfen in diesem Kanal nicht mehr laufen.",
		"no_models":          "Gerade bietet kein GPU-Worker seine Modelle an.",
		"unknown_command":    "Unbekannter Befehl.",

		// history
		"history_title":         "Deine fertigen Bilder, neueste zuerst:",
		"history_empty":         "Du hast noch keine fertigen Bilder. Erstelle eins mit /imagine.",
		"history_entry":         "%s · %d×%d · Seed %s · %s",
		"history_default_model": "Standardmodell",
		"history_random_seed":   "zufällig",
		"history_images":        "%d Bild(er)",
		"history_expired":       "(Bilder abgelaufen)",
		"button_newer":          "Neuere",
		"button_older":          "Ältere",
		"button_more":           "Mehr",

		// Discord /queue, /models, upscale answers, /easel-admin and buttons
		"status_queued":      "wartet",
		"status_dispatched":  "wird gestartet",
		"status_running":     "läuft",
		"queue_place":        " — Platz %d, ~%s",
		"models_title":       "Modelle",
		"models_loaded":      " (geladen)",
		"models_samplers":    "Sampler",
		"models_schedulers":  "Rauschpläne",
		"models_loras":       "LoRAs",
		"upscale_of":         "**U%d** von `%s`",
		"pick_subcommand":    "Wähle einen Unterbefehl.",
		"unknown_subcommand": "Unbekannter Unterbefehl.",
		"policy_settable":    "Einstellbar: %s",
		"policy_set":         "`%s` auf `%s` gesetzt.",
		"usage_reset":        "Nutzung von <@%s> zurückgesetzt.",
		"user_blocked":       "<@%s> gesperrt.",
		"user_unblocked":     "<@%s> entsperrt.",
		"top_members":        "Aktivste Mitglieder heute:",
		"top_member":         "<@%s>: %d Bilder",
		"not_easel_button":   "Diese Schaltfläche stammt nicht von Easel.",
		"unknown_button":     "Unbekannte Schaltfläche.",

		// Slack buttons
		"slack_not_owner":       "🚫 Nur wer gefragt hat (oder ein Workspace-Admin) kann diese Schaltflächen benutzen.",
		"slack_upscaling_image": "Bild %d wird hochskaliert…",
		// Slack admin replies and delivery-problem notices
		"slack_admin_only":         "🚫 Nur Admins und Inhaber des Workspace können die Einstellungen von Easel ändern.",
		"slack_admin_done":         "Erledigt.",
		"slack_admin_help":         "Admin-Befehle: `admin policy`, `admin set <Feld> <Wert>`, `admin reset @Person`, `admin block @Person`, `admin unblock @Person`, `admin nsfw on|off` (dieser Kanal), `admin defaults [channel] <Feld> <Wert>` (leerer Wert löscht).",
		"slack_defaults_shown":     "Standardwerte (Workspace < Kanal): Workspace `%s`, dieser Kanal `%s`",
		"scope_workspace":          "Workspace",
		"slack_submitting":         "Wird eingereicht…",
		"slack_working_invite":     "⏳ Ich arbeite daran. Ich bin kein Mitglied dieses Kanals, daher schicke ich das fertige Bild über diesen Befehl, ohne Fortschritt und Schaltflächen. Um diese (und Erwähnungen) hier zu bekommen, lade mich ein: Tippe in diesem Kanal `/invite @` gefolgt von meinem Namen.",
		"slack_edited":             "✏️ Das Bearbeiten einer Nachricht startet kein neues Bild. Erwähne mich stattdessen in einer neuen Nachricht.",
		"slack_post_no_access":     "🚫 Ich kann in diesem Kanal nicht posten (%s). Lade mich mit `/invite @` gefolgt von meinem Namen ein oder nutze hier `/imagine`: Ich antworte dann über den Befehl.",
		"slack_post_ratelimited":   "⏳ Slack begrenzt, wie schnell ich in diesem Kanal posten kann; nichts wurde eingereiht. Bitte versuche es in einer Minute noch einmal.",
		"slack_post_missing_scope": "🚫 Mir fehlt eine Slack-Berechtigung (%s); bitte einen Workspace-Admin, die App neu zu installieren. Nichts wurde eingereiht.",
		"slack_post_failed":        "⚠️ Ich konnte meine Antwort nicht posten (%s), daher wurde nichts eingereiht. Bitte versuche es noch einmal.",
		"slack_share_failed":       "Dein Bild `%s` ist fertig, aber ich konnte es hier nicht teilen (%s).",
		"slack_upload_failed":      "Dein Bild `%s` ist fertig, aber ich konnte es nicht hochladen (%s).",
		"slack_update_failed":      "Dein Bild `%s` ist fertig, aber ich konnte seine Nachricht nicht aktualisieren (%s): %s",
		"slack_direct_note":        "Ich konnte dein `/imagine` in <#%s> nicht über den Befehl beantworten (%s: Slack hält den Antwortlink eines Befehls 30 Minuten und 5 Nachrichten lang), daher kommt es hier. Lade mich in den Kanal ein (`/invite @` gefolgt von meinem Namen), um Ergebnisse dort zu bekommen.",
	},
	"ja": {
		"slack_nsfw_refused": "🔞 `%s` は NSFW に指定されています。管理者が許可したチャンネル（`@easel admin nsfw on`）でのみ実行できます。何もキューに入れていません。",
		"slack_invalid":      "⚠️ %s。`--help` を参照してください。",
		"slack_done":         "完了 · %d×%d · %d ステップ · シード %s",
		"queued":             "待機中 — %d 番目",
		"waiting_backend":    " — GPU バックエンドを待っています（%s）",
		"backend_down":       "%s は %s から応答なし",
		"eta":                "、約 %s",
		"starting":           "開始しています…",
		"starting_on":        "%s で開始しています…",
		"left":               " · 残り約 %d 秒",
		"retrying":           "%.0f 秒後に再試行します: %s",
		"done":               "%d×%d · %d ステップ · CFG %g · シード %s",
		"seed_subseed":       "%d（バリエーションのサブシード %d）",
		"upscaled":           "×%g にアップスケール（画像 %d、`%s`）",
		"upscaling":          "アップスケールしています…",
		"upscale_queued":     "アップスケール待機中 — %d 番目",
		"canceled":           "キャンセルしました。",
		"canceled_job":       "`%s` をキャンセルしました。",
		"failed":             "❌ %s",
		"relaxed":            "（リラックスモード：本日の上限を超えているため、他の人の後に実行されます）",
		"button_cancel":      "キャンセル",
		"button_reroll":      "再生成",
		"nsfw_refused":       "🔞 %q は NSFW に指定されています。年齢制限のあるチャンネル（または管理者が許可した場所）でのみ実行できます。何もキューに入れていません。",
		"invalid_here":       "⚠️ %s（このサーバーの設定）",
		"refused":            "⏳ %s",
		"forbidden":          "🚫 %s",
		"no_such_job":        "そのジョブはありません。",
		"no_such_image":      "その画像はありません。",
		"finished":           "そのジョブはすでに終了しています。",
		"internal":           "こちらで問題が発生しました。もう一度お試しください。",
		"not_owner":          "🚫 これらのボタンは依頼した本人（またはサーバー管理者）だけが使えます。",
		"no_jobs":            "待機中のジョブはありません。",
		"no_jobs_to_cancel":  "キャンセルできるジョブはありません。",
		"usage":              "今日は %d 枚の画像を作成しました（%s）。",
		"no_limit":           "1 日の上限なし",
		"usage_left":         "残り %d / %d、リセットまで %s",
		"your_defaults":      "あなたの既定値: `%s`",
		"defaults_shown":     "ここでの既定値（サーバー < チャンネル）: サーバー `%s`、チャンネル `%s`",
		"defaults_set":       "%s の既定値 `%s` を `%s` に設定しました。",
		"scope_server":       "サーバー",
		"scope_channel":      "チャンネル",
		"spoilers_on":        "このサーバーの画像はスポイラーとして送信されます。",
		"spoilers_off":       "このサーバーの画像はスポイラーとして送信されなくなりました。",
		"nsfw_channel_on":    "このチャンネルで NSFW 指定のモデルを実行できるようになりました。",
		"nsfw_channel_off":   "このチャンネルでは NSFW 指定のモデルを実行できなくなりました。",
		"no_models":          "現在、モデルを公開している GPU ワーカーはありません。",
		"unknown_command":    "不明なコマンドです。",

		// history
		"history_title":         "完了した画像（新しい順）：",
		"history_empty":         "完了した画像はまだありません。/imagine で作成できます。",
		"history_entry":         "%s · %d×%d · シード %s · %s",
		"history_default_model": "既定のモデル",
		"history_random_seed":   "ランダム",
		"history_images":        "画像 %d 枚",
		"history_expired":       "（画像の保存期間が切れました）",
		"button_newer":          "新しい",
		"button_older":          "古い",
		"button_more":           "もっと見る",

		// Discord /queue, /models, upscale answers, /easel-admin and buttons
		"status_queued":      "待機中",
		"status_dispatched":  "開始中",
		"status_running":     "実行中",
		"queue_place":        " — %d 番目、約 %s",
		"models_title":       "モデル",
		"models_loaded":      "（読み込み済み）",
		"models_samplers":    "サンプラー",
		"models_schedulers":  "スケジューラー",
		"models_loras":       "LoRA",
		"upscale_of":         "`%[2]s` の **U%[1]d**",
		"pick_subcommand":    "サブコマンドを選んでください。",
		"unknown_subcommand": "不明なサブコマンドです。",
		"policy_settable":    "設定できる項目: %s",
		"policy_set":         "`%s` を `%s` に設定しました。",
		"usage_reset":        "<@%s> の使用量をリセットしました。",
		"user_blocked":       "<@%s> をブロックしました。",
		"user_unblocked":     "<@%s> のブロックを解除しました。",
		"top_members":        "今日の上位メンバー:",
		"top_member":         "<@%s>: %d 枚",
		"not_easel_button":   "このボタンは Easel のものではありません。",
		"unknown_button":     "不明なボタンです。",

		// Slack buttons
		"slack_not_owner":       "🚫 これらのボタンは依頼した本人（またはワークスペース管理者）だけが使えます。",
		"slack_upscaling_image": "画像 %d をアップスケールしています…",
		// Slack admin replies and delivery-problem notices
		"slack_admin_only":         "🚫 Easel の設定を変更できるのはワークスペースの管理者とオーナーだけです。",
		"slack_admin_done":         "完了しました。",
		"slack_admin_help":         "管理コマンド: `admin policy`、`admin set <項目> <値>`、`admin reset @ユーザー`、`admin block @ユーザー`、`admin unblock @ユーザー`、`admin nsfw on|off`（このチャンネル）、`admin defaults [channel] <項目> <値>`（値が空なら解除）。",
		"slack_defaults_shown":     "既定値（ワークスペース < チャンネル）: ワークスペース `%s`、このチャンネル `%s`",
		"scope_workspace":          "ワークスペース",
		"slack_submitting":         "送信しています…",
		"slack_working_invite":     "⏳ 処理しています。このチャンネルのメンバーではないため、完成した画像はこのコマンドを通じて、進捗やボタンなしで送ります。ここでそれら（とメンション）を使うには、このチャンネルで `/invite @` に続けて私の名前を入力して招待してください。",
		"slack_edited":             "✏️ メッセージを編集しても新しい画像は作られません。新しいメッセージでメンションしてください。",
		"slack_post_no_access":     "🚫 このチャンネルに投稿できません（%s）。`/invite @` に続けて私の名前を入力して招待するか、ここで `/imagine` を使ってください。コマンドを通じて返信します。",
		"slack_post_ratelimited":   "⏳ Slack がこのチャンネルへの投稿速度を制限しています。何もキューに入れていません。1 分ほどしてからもう一度お試しください。",
		"slack_post_missing_scope": "🚫 Slack の権限が不足しています（%s）。ワークスペース管理者にアプリの再インストールを依頼してください。何もキューに入れていません。",
		"slack_post_failed":        "⚠️ 返信を投稿できなかったため（%s）、何もキューに入れていません。もう一度お試しください。",
		"slack_share_failed":       "画像 `%s` は完成しましたが、ここで共有できませんでした（%s）。",
		"slack_upload_failed":      "画像 `%s` は完成しましたが、アップロードできませんでした（%s）。",
		"slack_update_failed":      "画像 `%s` は完成しましたが、メッセージを更新できませんでした（%s）: %s",
		"slack_direct_note":        "<#%s> での `/imagine` にコマンド経由で返信できなかったため（%s: Slack のコマンドの返信リンクは 30 分間・5 メッセージまで有効です）、ここに送ります。チャンネルで結果を受け取るには、私をチャンネルに招待してください（`/invite @` に続けて私の名前）。",
	},
}

// SeedsText lists a finished job's seeds for its final message, each with
// its variation subseed when the job was a variation (an image is
// reproduced from both and the strength).
func SeedsText(locale string, seeds, subseeds []int64) string {
	parts := make([]string, len(seeds))
	for i, s := range seeds {
		if i < len(subseeds) {
			parts[i] = T(locale, "seed_subseed", s, subseeds[i])
		} else {
			parts[i] = strconv.FormatInt(s, 10)
		}
	}
	return strings.Join(parts, ", ")
}
