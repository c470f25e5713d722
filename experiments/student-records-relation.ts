/** Student Records ("drops in the ocean"), relation questions: PERK vs FT-ICR. */
import { studentRecords } from "./families.ts";

export default studentRecords("relation");
