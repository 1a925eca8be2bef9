//! British → American spellings: a hand-written subset of OpenAI's `english.json` (the
//! tysto.com list, 1739 words). Every form below maps as `english.json` maps it; words the
//! list has and these rules lack are left alone.
//!
//! Rules are stems with the endings each takes (`colour` + `s` → `color` + `s`), so that
//! a stem's inflections stay together, plus single words.

/// `(British stem, American stem, endings)`.
type StemRule = (&'static str, &'static str, &'static [&'static str]);

const VERB: &[&str] = &["e", "es", "ed", "ing"];

/// `-our` → `-or`.
const OUR: &[StemRule] = &[
    ("ardour", "ardor", &[""]),
    ("armour", "armor", &["", "ed", "y"]),
    ("behaviour", "behavior", &["", "s", "al"]),
    ("candour", "candor", &[""]),
    ("clamour", "clamor", &["", "s", "ed", "ing"]),
    ("colour", "color", &["", "s", "ed", "ing", "ful", "less"]),
    ("demeanour", "demeanor", &[""]),
    ("dishonour", "dishonor", &[""]),
    ("endeavour", "endeavor", &["", "s", "ed", "ing"]),
    (
        "favour",
        "favor",
        &["", "s", "ed", "ing", "able", "ably", "ite", "ites"],
    ),
    ("fervour", "fervor", &[""]),
    ("flavour", "flavor", &["", "s", "ed", "ing"]),
    ("harbour", "harbor", &["", "s", "ed", "ing"]),
    ("honour", "honor", &["", "s", "ed", "ing", "able", "ably"]),
    ("humour", "humor", &["", "s", "ed", "ing", "less"]),
    ("labour", "labor", &["", "s", "ed", "ing", "er", "ers"]),
    (
        "neighbour",
        "neighbor",
        &["", "s", "ing", "hood", "hoods", "ly"],
    ),
    ("odour", "odor", &["", "s", "less"]),
    ("parlour", "parlor", &["", "s"]),
    ("rigour", "rigor", &["", "s"]),
    ("rumour", "rumor", &["", "s", "ed"]),
    ("saviour", "savior", &["", "s"]),
    ("savour", "savor", &["", "s", "ed", "ing", "y"]),
    ("splendour", "splendor", &["", "s"]),
    ("tumour", "tumor", &["", "s"]),
    ("valour", "valor", &[""]),
    ("vapour", "vapor", &["", "s"]),
    ("vigour", "vigor", &[""]),
];

/// `-ise` → `-ize` verbs (`organis` + `e`/`es`/`ed`/`ing`), with their `-isation` and
/// `-iser` nouns where the list has them.
const ISE: &[StemRule] = &[
    ("agonis", "agoniz", VERB),
    ("apologis", "apologiz", VERB),
    ("authoris", "authoriz", VERB),
    ("capitalis", "capitaliz", VERB),
    ("categoris", "categoriz", VERB),
    ("centralis", "centraliz", VERB),
    ("characteris", "characteriz", VERB),
    ("civilis", "civiliz", VERB),
    ("colonis", "coloniz", &["e", "es", "ed", "ing", "ation"]),
    ("criticis", "criticiz", VERB),
    ("customis", "customiz", VERB),
    (
        "democratis",
        "democratiz",
        &["e", "es", "ed", "ing", "ation"],
    ),
    ("digitis", "digitiz", VERB),
    ("emphasis", "emphasiz", VERB),
    ("energis", "energiz", VERB),
    ("equalis", "equaliz", &["e", "es", "ed", "ing", "er", "ers"]),
    ("familiaris", "familiariz", VERB),
    ("fantasis", "fantasiz", VERB),
    (
        "fertilis",
        "fertiliz",
        &["e", "es", "ed", "ing", "ation", "er", "ers"],
    ),
    ("finalis", "finaliz", VERB),
    (
        "generalis",
        "generaliz",
        &["e", "es", "ed", "ing", "ation", "ations"],
    ),
    ("globalis", "globaliz", &["e", "es", "ed", "ing", "ation"]),
    ("harmonis", "harmoniz", &["e", "es", "ed", "ing", "ation"]),
    (
        "hospitalis",
        "hospitaliz",
        &["e", "es", "ed", "ing", "ation"],
    ),
    ("humanis", "humaniz", VERB),
    ("hypnotis", "hypnotiz", VERB),
    ("idealis", "idealiz", &["e", "es", "ed", "ing", "ation"]),
    ("immunis", "immuniz", &["e", "es", "ed", "ing", "ation"]),
    ("industrialis", "industrializ", VERB),
    ("itemis", "itemiz", VERB),
    ("jeopardis", "jeopardiz", VERB),
    ("legalis", "legaliz", &["e", "es", "ed", "ing", "ation"]),
    ("localis", "localiz", VERB),
    ("maximis", "maximiz", VERB),
    ("memoris", "memoriz", VERB),
    ("minimis", "minimiz", VERB),
    ("mobilis", "mobiliz", &["e", "es", "ed", "ing", "ation"]),
    ("modernis", "moderniz", VERB),
    (
        "moisturis",
        "moisturiz",
        &["e", "es", "ed", "ing", "er", "ers"],
    ),
    (
        "nationalis",
        "nationaliz",
        &["e", "es", "ed", "ing", "ation"],
    ),
    ("neutralis", "neutraliz", &["e", "es", "ed", "ing", "ation"]),
    ("normalis", "normaliz", &["e", "es", "ed", "ing", "ation"]),
    ("optimis", "optimiz", VERB),
    (
        "organis",
        "organiz",
        &["e", "es", "ed", "ing", "ation", "ations", "er", "ers"],
    ),
    ("patronis", "patroniz", VERB),
    ("personalis", "personaliz", VERB),
    ("polaris", "polariz", &["e", "es", "ed", "ing", "ation"]),
    ("prioritis", "prioritiz", VERB),
    ("privatis", "privatiz", &["e", "es", "ed", "ing", "ation"]),
    ("publicis", "publiciz", VERB),
    (
        "rationalis",
        "rationaliz",
        &["e", "es", "ed", "ing", "ation", "ations"],
    ),
    (
        "realis",
        "realiz",
        &["e", "es", "ed", "ing", "ation", "ations"],
    ),
    ("recognis", "recogniz", VERB),
    ("scrutinis", "scrutiniz", VERB),
    ("socialis", "socializ", &["e", "es", "ed", "ing", "ation"]),
    ("specialis", "specializ", &["e", "es", "ed", "ing", "ation"]),
    (
        "stabilis",
        "stabiliz",
        &["e", "es", "ed", "ing", "ation", "er", "ers"],
    ),
    (
        "standardis",
        "standardiz",
        &["e", "es", "ed", "ing", "ation"],
    ),
    ("sterilis", "steriliz", &["e", "es", "ed", "ing", "ation"]),
    ("subsidis", "subsidiz", VERB),
    ("summaris", "summariz", VERB),
    ("symbolis", "symboliz", VERB),
    (
        "sympathis",
        "sympathiz",
        &["e", "es", "ed", "ing", "er", "ers"],
    ),
    (
        "synchronis",
        "synchroniz",
        &["e", "es", "ed", "ing", "ation"],
    ),
    ("terroris", "terroriz", VERB),
    ("utilis", "utiliz", &["e", "es", "ed", "ing", "ation"]),
    ("vandalis", "vandaliz", VERB),
    (
        "visualis",
        "visualiz",
        &["e", "es", "ed", "ing", "ation", "ations"],
    ),
];

/// `-yse` → `-yze`.
const YSE: &[StemRule] = &[
    ("analys", "analyz", VERB),
    ("catalys", "catalyz", VERB),
    ("paralys", "paralyz", VERB),
];

/// Doubled `l` before a suffix: `travelled` → `traveled`.
const LL: &[StemRule] = &[
    ("cancell", "cancel", &["ed", "ing"]),
    ("channell", "channel", &["ed", "ing"]),
    ("counsell", "counsel", &["ed", "ing", "or", "ors"]),
    ("diall", "dial", &["ed", "ing"]),
    ("funnell", "funnel", &["ed", "ing"]),
    ("jewell", "jewel", &["ed", "er", "ers"]),
    ("labell", "label", &["ed", "ing"]),
    ("levell", "level", &["ed", "ing", "er", "ers"]),
    ("marvell", "marvel", &["ed", "ing", "ous", "ously"]),
    ("modell", "model", &["ed", "ing", "er", "ers"]),
    ("panell", "panel", &["ed", "ing", "ist", "ists"]),
    ("pedall", "pedal", &["ed", "ing"]),
    ("quarrell", "quarrel", &["ed", "ing"]),
    ("signall", "signal", &["ed", "ing"]),
    ("travell", "travel", &["ed", "ing", "er", "ers"]),
    ("tunnell", "tunnel", &["ed", "ing"]),
];

/// `-re` → `-er`.
const RE: &[StemRule] = &[
    ("calib", "calib", &["re>er", "res>ers"]),
    ("centimet", "centimet", &["re>er", "res>ers"]),
    ("cent", "cent", &["re>er", "res>ers", "red>ered"]),
    ("fib", "fib", &["re>er", "res>ers"]),
    ("kilomet", "kilomet", &["re>er", "res>ers"]),
    ("lit", "lit", &["re>er", "res>ers"]),
    ("meag", "meag", &["re>er"]),
    ("met", "met", &["re>er", "res>ers"]),
    ("millimet", "millimet", &["re>er", "res>ers"]),
    ("somb", "somb", &["re>er"]),
    ("spect", "spect", &["re>er", "res>ers"]),
    ("theat", "theat", &["re>er", "res>ers"]),
];

/// Single words.
const WORDS: &[(&str, &str)] = &[
    ("aeroplane", "airplane"),
    ("aeroplanes", "airplanes"),
    ("ageing", "aging"),
    ("aluminium", "aluminum"),
    ("anaemia", "anemia"),
    ("anaemic", "anemic"),
    ("anaesthesia", "anesthesia"),
    ("anaesthetic", "anesthetic"),
    ("anaesthetics", "anesthetics"),
    ("analogue", "analog"),
    ("analogues", "analogs"),
    ("artefact", "artifact"),
    ("artefacts", "artifacts"),
    ("axe", "ax"),
    ("catalogue", "catalog"),
    ("catalogued", "cataloged"),
    ("catalogues", "catalogs"),
    ("cataloguing", "cataloging"),
    ("cheque", "check"),
    ("chequebook", "checkbook"),
    ("cheques", "checks"),
    ("cosy", "cozy"),
    ("councillor", "councilor"),
    ("councillors", "councilors"),
    ("defence", "defense"),
    ("defenceless", "defenseless"),
    ("defences", "defenses"),
    ("dialogue", "dialog"),
    ("dialogues", "dialogs"),
    ("diarrhoea", "diarrhea"),
    ("disc", "disk"),
    ("discs", "disks"),
    ("draught", "draft"),
    ("draughts", "drafts"),
    ("draughty", "drafty"),
    ("encyclopaedia", "encyclopedia"),
    ("encyclopaedias", "encyclopedias"),
    ("enrol", "enroll"),
    ("enrols", "enrolls"),
    ("foetus", "fetus"),
    ("fulfil", "fulfill"),
    ("fulfilment", "fulfillment"),
    ("fulfils", "fulfills"),
    ("gaol", "jail"),
    ("grey", "gray"),
    ("greyed", "grayed"),
    ("greying", "graying"),
    ("greyish", "grayish"),
    ("greys", "grays"),
    ("haemoglobin", "hemoglobin"),
    ("haemorrhage", "hemorrhage"),
    ("instalment", "installment"),
    ("instalments", "installments"),
    ("jewellery", "jewelry"),
    ("judgement", "judgment"),
    ("leukaemia", "leukemia"),
    ("licence", "license"),
    ("licences", "licenses"),
    ("manoeuvre", "maneuver"),
    ("manoeuvred", "maneuvered"),
    ("manoeuvres", "maneuvers"),
    ("manoeuvring", "maneuvering"),
    ("mould", "mold"),
    ("moulded", "molded"),
    ("moulds", "molds"),
    ("mouldy", "moldy"),
    ("moustache", "mustache"),
    ("moustaches", "mustaches"),
    ("offence", "offense"),
    ("offences", "offenses"),
    ("omelette", "omelet"),
    ("omelettes", "omelets"),
    ("orthopaedic", "orthopedic"),
    ("paediatric", "pediatric"),
    ("paediatrician", "pediatrician"),
    ("paediatricians", "pediatricians"),
    ("plough", "plow"),
    ("ploughed", "plowed"),
    ("ploughing", "plowing"),
    ("ploughs", "plows"),
    ("practise", "practice"),
    ("practised", "practiced"),
    ("practises", "practices"),
    ("practising", "practicing"),
    ("pretence", "pretense"),
    ("programme", "program"),
    ("programmes", "programs"),
    ("pyjamas", "pajamas"),
    ("sceptic", "skeptic"),
    ("sceptical", "skeptical"),
    ("scepticism", "skepticism"),
    ("sceptics", "skeptics"),
    ("storey", "story"),
    ("storeys", "stories"),
    ("sulphur", "sulfur"),
    ("tyre", "tire"),
    ("tyres", "tires"),
    ("woollen", "woolen"),
    ("worshipped", "worshiped"),
    ("worshipping", "worshiping"),
    ("yoghurt", "yogurt"),
];

fn apply(rules: &[StemRule], word: &str) -> Option<String> {
    for &(british, american, endings) in rules {
        let Some(rest) = word.strip_prefix(british) else {
            continue;
        };
        for ending in endings {
            // `from>to` changes the ending too (`-re` → `-er`).
            let (from, to) = ending.split_once('>').unwrap_or((ending, ending));
            if rest == from {
                return Some(format!("{american}{to}"));
            }
        }
    }
    None
}

/// The American spelling of a lowercase word, if the subset knows it.
pub(super) fn american(word: &str) -> Option<String> {
    if let Ok(i) = WORDS.binary_search_by(|(b, _)| (*b).cmp(word)) {
        return Some(WORDS[i].1.to_string());
    }
    [OUR, ISE, YSE, LL, RE]
        .iter()
        .find_map(|rules| apply(rules, word))
}

/// Every `(British, American)` pair the rules produce.
#[cfg(test)]
pub(super) fn all_pairs() -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = WORDS
        .iter()
        .map(|&(b, a)| (b.to_string(), a.to_string()))
        .collect();
    for rules in [OUR, ISE, YSE, LL, RE] {
        for &(british, american, endings) in rules {
            for ending in endings {
                let (from, to) = ending.split_once('>').unwrap_or((ending, ending));
                pairs.push((format!("{british}{from}"), format!("{american}{to}")));
            }
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_sorted_for_binary_search() {
        assert!(WORDS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn every_rule_maps_to_itself_consistently() {
        for (british, american_) in all_pairs() {
            assert_ne!(british, american_);
            assert_eq!(
                american(&british).as_deref(),
                Some(american_.as_str()),
                "{british}"
            );
            // American spellings are fixed points.
            assert_eq!(american(&american_), None, "{american_}");
        }
        assert_eq!(american("emphasis"), None);
        assert_eq!(american("analysis"), None);
        assert_eq!(american("colourful").as_deref(), Some("colorful"));
        assert_eq!(american("centre").as_deref(), Some("center"));
    }
}
