/** BabiLong QA3 at 1K: PERK vs FT-ICR, trained and tested on 1K contexts (paper Table 2). */
import { babilong1k } from "./families.ts";

export default babilong1k("qa3");
