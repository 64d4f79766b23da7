package discord

import (
	"github.com/bwmarrin/discordgo"

	"github.com/easelbot/easel/commands"
	"github.com/easelbot/easel/scheduler"
)

// Command localizations: Discord shows a command's name and description in
// the user's client language when the definition carries
// name_localizations and description_localizations (keys are Discord
// locales, e.g. "de", "ja"; names must stay lowercase, 1–32 letters,
// digits, "-" or "_"). Interactions still carry the default (English)
// names, so only the display changes. Keys below are "command" or
// "command.option" or "command.subcommand.option"; a test checks every
// command, subcommand and option has an entry in every language.

type text struct{ name, desc string }

var commandText = map[discordgo.Locale]map[string]text{
	discordgo.German: {
		"imagine":                    {"bild", "Ein Bild aus einer Beschreibung erzeugen"},
		"imagine.prompt":             {"", "was gezeichnet werden soll"},
		"imagine.negative":           {"", "was vermieden werden soll"},
		"imagine.aspect":             {"", "Seitenverhältnis"},
		"imagine.width":              {"", "Breite in Pixeln (Vielfaches von 8)"},
		"imagine.height":             {"", "Höhe in Pixeln (Vielfaches von 8)"},
		"imagine.steps":              {"", "Sampling-Schritte"},
		"imagine.cfg":                {"", "Guidance-Skala"},
		"imagine.seed":               {"", "Seed (-1: zufällig)"},
		"imagine.sampler":            {"", "Sampler"},
		"imagine.model":              {"", "Modell"},
		"imagine.count":              {"", "Anzahl der Bilder"},
		"imagine.image":              {"", "von diesem Bild ausgehen (PNG, JPEG oder WebP)"},
		"imagine.strength":           {"", "wie weit vom Bild abgewichen wird (0–1, Standard 0,75)"},
		"imagine.loras":              {"", "LoRAs als name:gewicht, durch Kommas getrennt (z. B. detail:0.8)"},
		"imagine.scheduler":          {"", "Rauschplan"},
		"queue":                      {"warteschlange", "Deine wartenden und laufenden Aufträge"},
		"cancel":                     {"abbrechen", "Deinen letzten Auftrag abbrechen (oder einen per ID)"},
		"cancel.job":                 {"", "Auftrags-ID"},
		"usage":                      {"nutzung", "Deine Bilder heute und dein Kontingent"},
		"history":                    {"verlauf", "Deine fertigen Bilder, neueste zuerst"},
		"models":                     {"modelle", "Modelle, Sampler, Rauschpläne und LoRAs der GPUs"},
		"settings":                   {"einstellungen", "Deine Standardwerte für /imagine"},
		"settings.field":             {"", "was gesetzt werden soll"},
		"settings.value":             {"", "der Wert (leer löscht ihn)"},
		"easel-admin":                {"", "Server-Einstellungen für Easel"},
		"easel-admin.policy":         {"", "Richtlinie dieses Servers anzeigen"},
		"easel-admin.set":            {"", "ein Richtlinienfeld setzen"},
		"easel-admin.set.field":      {"", "Feld, z. B. max_steps"},
		"easel-admin.set.value":      {"", "Wert, z. B. 30 (oder default)"},
		"easel-admin.reset":          {"", "die heutige Nutzung eines Mitglieds zurücksetzen"},
		"easel-admin.reset.user":     {"", "das Mitglied"},
		"easel-admin.block":          {"", "ein Mitglied sperren"},
		"easel-admin.block.user":     {"", "das Mitglied"},
		"easel-admin.unblock":        {"", "ein Mitglied entsperren"},
		"easel-admin.unblock.user":   {"", "das Mitglied"},
		"easel-admin.usage":          {"", "aktivste Mitglieder heute"},
		"easel-admin.defaults":       {"", "Standardwerte des Servers oder dieses Kanals zeigen oder setzen"},
		"easel-admin.defaults.field": {"", "was gesetzt werden soll"},
		"easel-admin.defaults.value": {"", "der Wert (leer löscht ihn)"},
		"easel-admin.defaults.scope": {"", "für den ganzen Server oder nur diesen Kanal"},
		"easel-admin.spoilers":       {"", "Bilder als Spoiler senden"},
		"easel-admin.spoilers.on":    {"", "an oder aus"},
	},
	discordgo.Japanese: {
		"imagine":                    {"画像生成", "プロンプトから画像を作成します"},
		"imagine.prompt":             {"", "描きたいもの"},
		"imagine.negative":           {"", "避けたいもの"},
		"imagine.aspect":             {"", "アスペクト比"},
		"imagine.width":              {"", "幅（ピクセル、8 の倍数）"},
		"imagine.height":             {"", "高さ（ピクセル、8 の倍数）"},
		"imagine.steps":              {"", "サンプリングステップ数"},
		"imagine.cfg":                {"", "ガイダンススケール"},
		"imagine.seed":               {"", "シード（-1: ランダム）"},
		"imagine.sampler":            {"", "サンプラー"},
		"imagine.model":              {"", "モデル"},
		"imagine.count":              {"", "画像の枚数"},
		"imagine.image":              {"", "この画像から始める（PNG、JPEG、WebP）"},
		"imagine.strength":           {"", "元画像からどれだけ離れるか（0–1、既定 0.75）"},
		"imagine.loras":              {"", "LoRA を 名前:重み でカンマ区切り（例 detail:0.8）"},
		"imagine.scheduler":          {"", "ノイズスケジュール"},
		"queue":                      {"キュー", "待機中・実行中のあなたのジョブ"},
		"cancel":                     {"キャンセル", "最新のジョブ（または ID 指定）をキャンセル"},
		"cancel.job":                 {"", "ジョブ ID"},
		"usage":                      {"使用量", "今日の画像数と上限"},
		"history":                    {"履歴", "完了した画像（新しい順）"},
		"models":                     {"モデル", "GPU が提供するモデル、サンプラー、スケジュール、LoRA"},
		"settings":                   {"設定", "/imagine の既定値"},
		"settings.field":             {"", "設定する項目"},
		"settings.value":             {"", "値（空にすると消去）"},
		"easel-admin":                {"", "Easel のサーバー設定"},
		"easel-admin.policy":         {"", "このサーバーのポリシーを表示"},
		"easel-admin.set":            {"", "ポリシー項目を設定"},
		"easel-admin.set.field":      {"", "項目（例 max_steps）"},
		"easel-admin.set.value":      {"", "値（例 30、または default）"},
		"easel-admin.reset":          {"", "メンバーの今日の使用量をリセット"},
		"easel-admin.reset.user":     {"", "メンバー"},
		"easel-admin.block":          {"", "メンバーをブロック"},
		"easel-admin.block.user":     {"", "メンバー"},
		"easel-admin.unblock":        {"", "メンバーのブロックを解除"},
		"easel-admin.unblock.user":   {"", "メンバー"},
		"easel-admin.usage":          {"", "今日の上位メンバー"},
		"easel-admin.defaults":       {"", "サーバーまたはこのチャンネルの既定値を表示・設定"},
		"easel-admin.defaults.field": {"", "設定する項目"},
		"easel-admin.defaults.value": {"", "値（空にすると消去）"},
		"easel-admin.defaults.scope": {"", "サーバー全体か、このチャンネルだけか"},
		"easel-admin.spoilers":       {"", "画像をスポイラーとして送信"},
		"easel-admin.spoilers.on":    {"", "オンまたはオフ"},
	},
}

// localize adds every language's names and descriptions to defs.
func localize(defs []*discordgo.ApplicationCommand) []*discordgo.ApplicationCommand {
	for _, d := range defs {
		names, descs := localized(d.Name)
		if len(names) > 0 {
			d.NameLocalizations = &names
		}
		if len(descs) > 0 {
			d.DescriptionLocalizations = &descs
		}
		localizeOptions(d.Name, d.Options)
	}
	return defs
}

func localizeOptions(path string, opts []*discordgo.ApplicationCommandOption) {
	for _, o := range opts {
		p := path + "." + o.Name
		o.NameLocalizations, o.DescriptionLocalizations = localized(p)
		localizeOptions(p, o.Options)
	}
}

func localized(path string) (names, descs map[discordgo.Locale]string) {
	names, descs = map[discordgo.Locale]string{}, map[discordgo.Locale]string{}
	for loc, m := range commandText {
		t, ok := m[path]
		if !ok {
			continue
		}
		if t.name != "" {
			names[loc] = t.name
		}
		if t.desc != "" {
			descs[loc] = t.desc
		}
	}
	if len(names) == 0 {
		names = nil
	}
	return names, descs
}

// statusText is a job status in the reader's language (a status without
// a catalog entry as it is).
func statusText(loc string, s scheduler.Status) string {
	key := "status_" + string(s)
	if t := commands.T(loc, key); t != key {
		return t
	}
	return string(s)
}
